"""The rows an incident's analysis reads: a copy of the affected windows, taken on the ingest
thread (the only thread that touches a monitor), handed to the worker as frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.monitor.model import ModelMonitor
from agent.monitor.windows import Window

__all__ = ["RCAInput", "take_snapshot"]

WINDOW = "__window__"
LABELLED = "__labelled__"


@dataclass(frozen=True)
class RCAInput:
    """Everything one analysis needs, detached from the live monitor."""

    incident_id: str
    model: str
    reference: pd.DataFrame
    current: pd.DataFrame
    columns: dict[str, Any]  # keyword arguments naming the frames' columns for detectors.rca.analyse
    windows: tuple[int, ...]
    labelled: int

    @property
    def rows(self) -> int:
        return len(self.current)


def _chosen(mon: ModelMonitor, inc: dict[str, Any], context: int) -> list[Window]:
    windows = sorted([*mon.retained, *(w for w in mon.open.values() if w.rows.n)], key=lambda w: w.id)
    first = inc.get("first_window")
    if first is None:  # an Alertmanager incident: the recent windows
        closed = [w for w in windows if w.closed]
        return (closed or windows)[-context:]
    lo = int(first) - context
    return [w for w in windows if w.id >= lo]


def take_snapshot(mon: ModelMonitor, inc: dict[str, Any], *, context: int, max_rows: int) -> RCAInput:
    """Copy the rows of ``inc``'s windows (its range and ``context`` windows before it; the last
    ``context`` closed windows when it has no range), newest ``max_rows`` rows at most."""
    cfg = mon.ref.config
    parts: list[pd.DataFrame] = []
    ids_taken: list[int] = []
    budget = max_rows
    for w in reversed(_chosen(mon, inc, context)):
        if budget <= 0:
            break
        v = w.rows.view()
        n = min(len(v["ids"]), budget)
        if n == 0:
            continue
        sl = slice(len(v["ids"]) - n, None)
        cols: dict[str, Any] = {"id": v["ids"][sl].copy(), WINDOW: np.full(n, w.id, dtype=np.int64)}
        for c, arr in v["features"].items():
            cols[c] = arr[sl].copy()
        for c, arr in v["segments"].items():
            cols.setdefault(c, arr[sl].copy())
        y_true = v["y_true"][sl]
        labelled = v["labelled"][sl].copy()
        cols[cfg.target] = np.where(labelled, mon.classes.decode(y_true) if cfg.task != "regression" else y_true, None)
        if cfg.prediction:
            cols[cfg.prediction] = (mon.classes.decode(v["y_pred"][sl]) if cfg.task != "regression"
                                    else v["y_pred"][sl].copy())
        if cfg.score:
            cols[cfg.score] = v["score"][sl].copy()
        cols[LABELLED] = labelled
        parts.append(pd.DataFrame(cols))
        ids_taken.append(w.id)
        budget -= n
    current = pd.concat(parts[::-1], ignore_index=True) if parts else pd.DataFrame()
    if len(current) and cfg.task != "regression":
        current[cfg.target] = current[cfg.target].where(current[LABELLED], None)
    ref = mon.ref
    features = list(ref.drift.features)
    missing = [f for f in features if f not in current.columns]
    if len(current) and missing:
        raise ValueError(f"the windows keep no values for features {missing} (window.keep_features is off)")
    columns = {"target": cfg.target, "features": features, "prediction": cfg.prediction, "score": cfg.score,
               "task": cfg.task, "categorical": ref.categorical, "segments": list(cfg.segments),
               "id_column": "id", "window_column": WINDOW, "metric": cfg.incidents.metric}
    return RCAInput(str(inc["id"]), mon.name, ref.frame, current, columns, tuple(sorted(ids_taken)),
                    int(current[LABELLED].sum()) if len(current) else 0)
