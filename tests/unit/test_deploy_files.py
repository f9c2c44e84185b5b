"""The files a user deploys beside the agent: Prometheus config and rules, Alertmanager config,
the Grafana dashboard and its provisioning. Checked with the tools that will load them (promtool,
amtool, Grafana's foundation SDK) and for the contracts between them: job names, the webhook and
its token, metric names the agent really exports, a sane panel grid."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import find_binary

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules.yml"
RULES_TEST = PROM_DIR / "rules_test.yml"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "driftwarden.json"
REQUIRED_ALERTS = {"DriftwardenFeatureDrift", "DriftwardenPerformanceDrop", "DriftwardenDeadLetters",
                   "DriftwardenConsumerLag", "DriftwardenDown"}
WEBHOOK = "http://driftwarden:9108/alerts"


def tool(name: str, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = find_binary(name, install="apt-get install -y prometheus prometheus-alertmanager")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd)


def exported_metrics() -> set[str]:
    """Metric family names the agent registers (agent/outputs/metrics.py spells each one out)."""
    return set(re.findall(r'"(driftwarden_[a-z_]+)"', (ROOT / "agent" / "outputs" / "metrics.py").read_text()))


def referenced_metrics(promql: str) -> set[str]:
    names = set(re.findall(r"\b(driftwarden_[a-z_]+)\b", promql))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


# -- Prometheus --------------------------------------------------------------------------------

def test_promtool_check_rules() -> None:
    res = tool("promtool", "check", "rules", RULES)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    res = tool("promtool", "test", "rules", RULES_TEST.name, cwd=PROM_DIR)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_promtool_check_config() -> None:
    res = tool("promtool", "check", "config", PROM_CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr


def test_required_alerts_have_severity_model_and_annotations() -> None:
    rules = alerts()
    assert REQUIRED_ALERTS <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "for" in rule, f"{name} would page on a single evaluation"


def test_every_alert_is_unit_tested_both_ways() -> None:
    """Each alert is shown firing and quiet by rules_test.yml, and every alert it fires carries
    `model` and `severity` (promtool compares the full label set, so this is what fires)."""
    doc = yaml.safe_load(RULES_TEST.read_text())
    assert doc["rule_files"] == [RULES.name]
    fires, quiet = set(), set()
    for case in doc["tests"]:
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
            for exp in t.get("exp_alerts", []):
                assert {"model", "severity"} <= set(exp["exp_labels"]), (t["alertname"], exp["exp_labels"])
    assert set(alerts()) <= fires, f"never shown firing: {set(alerts()) - fires}"
    assert set(alerts()) <= quiet, f"never shown quiet: {set(alerts()) - quiet}"


def test_rules_use_only_exported_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text())
    used = set().union(*(referenced_metrics(r["expr"]) for g in doc["groups"] for r in g["rules"]))
    assert used and used <= exported_metrics(), used - exported_metrics()


def test_prometheus_config_matches_rules_and_alertmanager() -> None:
    cfg = yaml.safe_load(PROM_CONFIG.read_text())
    assert cfg["rule_files"] == [RULES.name]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["driftwarden"].get("metrics_path", "/metrics") == "/metrics"
    assert 'job="driftwarden"' in alerts()["DriftwardenDown"]["expr"]
    targets = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


# -- Alertmanager ------------------------------------------------------------------------------

def test_amtool_check_config() -> None:
    res = tool("amtool", "check-config", AM_CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr


def test_alertmanager_routes_model_alerts_to_the_agent_with_a_token_file() -> None:
    cfg = yaml.safe_load(AM_CONFIG.read_text())
    route = cfg["route"]
    assert "model" in route["group_by"] and "alertname" in route["group_by"]
    receivers = {r["name"]: r for r in cfg["receivers"]}
    (hook,) = receivers[route["receiver"]]["webhook_configs"]
    assert hook["url"] == WEBHOOK
    auth = hook["http_config"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    assert auth["credentials_file"].startswith("/") and "credentials" not in auth  # never inline
    # model alerts are not diverted away from the agent by a sub-route
    for sub in route.get("routes", []):
        for name in REQUIRED_ALERTS - {"DriftwardenDown"}:
            assert not any(re.search(m.split("=~", 1)[-1].strip('"'), name) for m in sub.get("matchers", [])
                           if m.startswith("alertname")), (name, sub)


# -- Grafana -----------------------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    out = []
    for p in dashboard()["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def test_dashboard_is_generated_from_build_dashboards() -> None:
    import sys

    sys.path.insert(0, str(GRAFANA))
    try:
        import build_dashboards
    finally:
        sys.path.remove(str(GRAFANA))
    assert build_dashboards.render() == DASHBOARD.read_text(), "stale: run python grafana/build_dashboards.py"


def test_dashboard_round_trips_through_the_sdk_model() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    raw = dashboard()
    assert json.loads(JSONEncoder().encode(Dashboard.from_json(raw))) == raw


def test_dashboard_identity_and_variables() -> None:
    d = dashboard()
    assert d["uid"] == "driftwarden" and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    model = variables["model"]
    assert model["type"] == "query"
    assert model["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert "label_values(" in json.dumps(model["query"]) and "model" in json.dumps(model["query"])


def test_panel_ids_unique_and_grid_sane() -> None:
    ps = panels()
    ids = [p["id"] for p in ps]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for p in ps:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert 0 <= g["x"] and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0 and g["y"] >= 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
    for p in dashboard()["panels"]:  # Grafana's layout: an expanded row holds no panels
        if p["type"] == "row" and not p.get("collapsed"):
            assert not p.get("panels"), p["title"]


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for p in panels():
        if p["type"] == "row":
            continue
        assert p["datasource"] == ref, p["title"]
        assert p["targets"], f"{p['title']!r} has no query"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == ref, p["title"]
            assert t["expr"].strip(), p["title"]


def test_dashboard_queries_use_exported_metrics_and_the_model_variable() -> None:
    exported = exported_metrics()
    agent_wide = {"driftwarden_consumer_lag", "driftwarden_processing_seconds", "driftwarden_dead_letters"}
    for p in panels():
        for t in p.get("targets", []):
            used = referenced_metrics(t["expr"])
            assert used <= exported, (p["title"], used - exported)
            # a model-level series is filtered by $model (agent-wide ones have no model label)
            if used - {n for n in used if n.startswith(tuple(agent_wide))}:
                assert '"$model"' in t["expr"] or 'model="unknown"' in t["expr"], (p["title"], t["expr"])


@pytest.mark.parametrize("section", ["Overview", "Data drift", "Performance", "Latency"])
def test_dashboard_sections(section: str) -> None:
    assert section in {p["title"] for p in dashboard()["panels"] if p["type"] == "row"}


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources.yml").read_text())
    (prom,) = [d for d in ds["datasources"] if d["type"] == "prometheus"]
    assert prom["url"].startswith("http") and prom.get("isDefault")
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yml").read_text())
    (provider,) = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
