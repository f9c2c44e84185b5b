"""Window state of one model: mergeable feature summaries plus the rows kept for label joins.

A window is either a fixed number of predictions (``window.size``) or an event-time bucket
(``window.duration``). Its drift state is a set of reference-binned summaries (bounded by
features x bins); its join state is one row per prediction (id, prediction, score, segment
values, label), bounded by the window size / ``max_rows`` and released when the window leaves
label retention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.drift import FeatureSummary

__all__ = ["RowStore", "Window"]


def _grow(a: np.ndarray, capacity: int) -> np.ndarray:
    out = np.empty(capacity, dtype=a.dtype)
    if a.dtype.kind == "f":
        out.fill(np.nan)
    elif a.dtype == bool:
        out.fill(False)
    out[: a.size] = a
    return out


@dataclass(slots=True)
class RowStore:
    """Growable columns, one row per prediction of a window, for joining late labels; with
    ``feature_kinds`` also the feature values (float64 for numeric, objects for categorical) that
    the root-cause analysis and the traffic store read."""

    segment_columns: tuple[str, ...] = ()
    proba_columns: tuple[str, ...] = ()  # multiclass: one probability column per reference class
    feature_kinds: dict[str, str] = field(default_factory=dict)  # feature -> "numeric" | "categorical"
    n: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    y_pred: np.ndarray = field(default_factory=lambda: np.empty(0))
    score: np.ndarray = field(default_factory=lambda: np.empty(0))
    event_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    y_true: np.ndarray = field(default_factory=lambda: np.empty(0))
    labelled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    proba: dict[str, np.ndarray] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.segment_columns:
            self.segments.setdefault(c, np.empty(0, dtype=object))
        for c in self.proba_columns:
            self.proba.setdefault(c, np.empty(0))
        for c, kind in self.feature_kinds.items():
            self.features.setdefault(c, np.empty(0, dtype=float if kind == "numeric" else object))

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= self.ids.size:
            return
        cap = max(need, 2 * self.ids.size, 64)
        for name in ("ids", "y_pred", "score", "event_s", "y_true", "labelled"):
            setattr(self, name, _grow(getattr(self, name), cap))
        for c in self.segments:
            self.segments[c] = _grow(self.segments[c], cap)
        for c in self.proba:
            self.proba[c] = _grow(self.proba[c], cap)
        for c in self.features:
            self.features[c] = _grow(self.features[c], cap)

    def append(self, ids: np.ndarray, y_pred: np.ndarray, score: np.ndarray, event_s: np.ndarray,
               segments: dict[str, np.ndarray], proba: dict[str, np.ndarray] | None = None,
               features: dict[str, np.ndarray] | None = None) -> int:
        """Append rows; returns the row index of the first one."""
        k = ids.size
        self._reserve(k)
        start, stop = self.n, self.n + k
        self.ids[start:stop] = ids
        self.y_pred[start:stop] = y_pred
        self.score[start:stop] = score
        self.event_s[start:stop] = event_s
        self.y_true[start:stop] = np.nan
        self.labelled[start:stop] = False
        for c, v in segments.items():
            self.segments[c][start:stop] = v
        for c in self.proba:
            self.proba[c][start:stop] = np.nan if proba is None else proba[c]
        for c, col in self.features.items():
            col[start:stop] = (np.nan if col.dtype.kind == "f" else None) if features is None else features[c]
        self.n = stop
        return start

    @classmethod
    def from_columns(cls, ids: np.ndarray, y_pred: np.ndarray, score: np.ndarray, event_s: np.ndarray,
                     y_true: np.ndarray, labelled: np.ndarray, segments: dict[str, np.ndarray],
                     proba: dict[str, np.ndarray], features: dict[str, np.ndarray] | None = None) -> RowStore:
        """A store holding these rows (the inverse of :meth:`view`, for checkpoints)."""
        features = features or {}
        kinds = {c: "numeric" if v.dtype.kind == "f" else "categorical" for c, v in features.items()}
        rows = cls(tuple(segments), tuple(proba), kinds)
        rows.append(ids, y_pred, score, event_s, segments, proba, features)
        rows.y_true[: rows.n] = y_true
        rows.labelled[: rows.n] = labelled
        return rows

    def view(self) -> dict[str, Any]:
        n = self.n
        return {"ids": self.ids[:n], "y_pred": self.y_pred[:n], "score": self.score[:n],
                "event_s": self.event_s[:n], "y_true": self.y_true[:n], "labelled": self.labelled[:n],
                "segments": {c: v[:n] for c, v in self.segments.items()},
                "proba": {c: v[:n] for c, v in self.proba.items()},
                "features": {c: v[:n] for c, v in self.features.items()}}

    @property
    def coverage(self) -> float:
        return float(self.labelled[: self.n].sum()) / self.n if self.n else 0.0


@dataclass(slots=True)
class Window:
    """One window of one model, open (accumulating) or closed (waiting for late labels)."""

    id: int
    start_s: float  # event-time bounds: the bucket for duration windows, observed min/max otherwise
    end_s: float
    features: dict[str, FeatureSummary]
    prediction: FeatureSummary
    rows: RowStore
    n: int = 0
    closed: bool = False
    perf_dirty: bool = False
    verdict: Any = None  # (DatasetDriftReport, prediction DriftResult | None), fixed at close
    settled: bool = False  # labels judged final enough: fed to concept detectors, not provisional
    conditional: Any = None  # agent.monitor.concept.WindowConditional, set when it settles
    failed: str | None = None  # why its judgement raised on its data; it is not judged again

    def observe_times(self, event_s: np.ndarray, bucketed: bool) -> None:
        if bucketed or event_s.size == 0:
            return
        lo, hi = float(np.nanmin(event_s)), float(np.nanmax(event_s))
        self.start_s = lo if self.n == 0 else min(self.start_s, lo)
        self.end_s = hi if self.n == 0 else max(self.end_s, hi)
