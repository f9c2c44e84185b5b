"""The shipped Grafana dashboards' queries, as Grafana would send them: shared by the tests that
run every panel's PromQL against a real Prometheus (integration and end-to-end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every target of every panel of every dashboard."""
    out: list[tuple[str, str, str]] = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())

        def walk(panels: list[dict[str, Any]]) -> None:
            for p in panels:
                for t in p.get("targets", []):
                    out.append((dash["uid"], p["title"], t["expr"]))
                walk(p.get("panels", []))

        walk(dash["panels"])
    return out


def concrete(expr: str, model: str, metric: str = "roc_auc") -> str:
    """Grafana's variables as Grafana would set them for a run: $__rate_interval is 10m, which
    spans a whole test run, so rate() sees every counter move however late a query runs."""
    values = {"$__rate_interval": "10m", "$__interval": "15s", "$__range": "1h", "${model}": model, "$model": model,
              "${metric}": metric, "$metric": metric}
    for var, val in values.items():
        expr = expr.replace(var, val)
    return expr
