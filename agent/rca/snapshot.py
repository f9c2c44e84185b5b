"""The rows an incident's analysis reads: a copy of the affected windows, taken on the ingest
thread (the only thread that touches a monitor), handed to the worker as frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.monitor.model import ModelMonitor
from agent.monitor.windows import Window

__all__ = ["LABELLED", "RCAInput", "WINDOW", "take_snapshot", "window_frame"]

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
    first_window: int | None = None  # the incident's first window: earlier rows are context only

    def split(self, min_rows: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """(the affected rows, the context rows before them); all rows when the affected ones are
        fewer than ``min_rows`` (or the incident has no window range)."""
        if self.first_window is None or not len(self.current):
            return self.current, None
        late = self.current[WINDOW].to_numpy() >= self.first_window
        if late.sum() < min_rows:
            return self.current, None
        return self.current[late].reset_index(drop=True), self.current[~late].reset_index(drop=True)

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


def window_frame(mon: ModelMonitor, w: Window, last: int | None = None) -> pd.DataFrame:
    """One window's joined rows as a frame (a copy): ``id``, ``timestamp`` (event seconds), the
    window id, every feature, the segment columns, the target (the reference's class values; None
    where no label came), the served prediction and score, and ``__labelled__``. ``last``: only
    the newest rows."""
    cfg = mon.ref.config
    v = w.rows.view()
    n = len(v["ids"]) if last is None else min(len(v["ids"]), last)
    sl = slice(len(v["ids"]) - n, None)
    cols: dict[str, Any] = {"id": v["ids"][sl].copy(), "timestamp": v["event_s"][sl].copy(),
                            WINDOW: np.full(n, w.id, dtype=np.int64)}
    for c, arr in v["features"].items():
        cols[c] = arr[sl].copy()
    for c, arr in v["segments"].items():
        cols.setdefault(c, arr[sl].copy())
    labelled = v["labelled"][sl].copy()
    y_true = v["y_true"][sl]
    if cfg.task == "regression":
        cols[cfg.target] = np.where(labelled, y_true, np.nan)
    else:
        target = mon.classes.decode(y_true)
        target[~labelled] = None
        cols[cfg.target] = target
    if cfg.prediction:
        cols[cfg.prediction] = (mon.classes.decode(v["y_pred"][sl]) if cfg.task != "regression"
                                else v["y_pred"][sl].copy())
    if cfg.score:
        cols[cfg.score] = v["score"][sl].copy()
    cols[LABELLED] = labelled
    return pd.DataFrame(cols)


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
        if w.rows.n == 0:
            continue
        part = window_frame(mon, w, last=budget)
        parts.append(part)
        ids_taken.append(w.id)
        budget -= len(part)
    current = pd.concat(parts[::-1], ignore_index=True) if parts else pd.DataFrame()
    ref = mon.ref
    features = list(ref.drift.features)
    missing = [f for f in features if f not in current.columns]
    if len(current) and missing:
        raise ValueError(f"the windows keep no values for features {missing} (window.keep_features is off)")
    columns = {"target": cfg.target, "features": features, "prediction": cfg.prediction, "score": cfg.score,
               "task": cfg.task, "categorical": ref.categorical, "segments": list(cfg.segments),
               "id_column": "id", "window_column": WINDOW, "metric": cfg.incidents.metric}
    first = inc.get("first_window")
    return RCAInput(str(inc["id"]), mon.name, ref.frame, current, columns, tuple(sorted(ids_taken)),
                    int(current[LABELLED].sum()) if len(current) else 0, None if first is None else int(first))
