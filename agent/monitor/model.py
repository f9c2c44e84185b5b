"""One model's monitor: route decoded batches into windows, join labels, close and judge windows.

Everything here is numpy over a batch; the only per-record Python is dictionary work for the
prediction-id join (a hash lookup per id, done with comprehensions).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Callable

import numpy as np
import pandas as pd

from agent.monitor.concept import ConceptTracker, WindowConditional, window_conditional
from agent.state.counters import Counters
from agent.decode.decoder import Labels, Predictions
from agent.decode.features import FeatureColumns, FeatureSpec, extract_features
from agent.monitor.reference import ModelReference
from agent.monitor.windows import RowStore, Window
from detectors.drift import DatasetDriftReport, FeatureSummary
from detectors.performance import classification_performance, regression_performance
from detectors.segments import segment_performance
from detectors.result import DriftResult

__all__ = ["ModelMonitor", "WindowResult", "MAX_UNEXPECTED_KEYS"]

MAX_UNEXPECTED_KEYS = 100  # distinct unexpected feature names exported per model

log = logging.getLogger(__name__)


def _class_key(c: object) -> str:
    """How a class names its probability in a ``scores`` object: ``"2"`` for 2 and 2.0."""
    if isinstance(c, (int, float, np.integer, np.floating)) and float(c).is_integer():
        return str(int(c))
    return str(c)


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Verdicts of one closed window; ``final`` once it has left label retention."""

    model: str
    window_id: int
    start_s: float
    end_s: float
    n: int
    drift: DatasetDriftReport
    prediction_drift: DriftResult | None
    performance: dict[str, dict[str, float]]  # segment -> metric -> value ("all" = whole window)
    support: dict[str, int]
    label_coverage: float
    final: bool
    provisional: bool = True  # performance may still move: coverage below min_coverage, not final
    ci: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # segment -> metric -> [lo, hi]
    conditional: dict[str, Any] = field(default_factory=dict)  # label shift, concept vs covariate
    failed: str | None = None  # why the judgement raised on this window's data (no verdicts then)

    def to_dict(self) -> dict[str, Any]:
        pd_ = self.prediction_drift
        return {
            "model": self.model, "window": self.window_id, "start": self.start_s, "end": self.end_s, "n": self.n,
            "final": self.final, "drift": self.drift.to_dict(),
            "scores": [[r.feature, r.method, r.statistic, r.p_value] for r in self.drift.scores],
            "prediction_drift": None if pd_ is None else {"method": pd_.method, "statistic": pd_.statistic,
                                                          "p_value": pd_.p_value, "effect_size": pd_.effect_size},
            "performance": self.performance, "ci": self.ci, "support": self.support,
            "label_coverage": self.label_coverage, "provisional": self.provisional, **self.conditional,
            **({"failed": self.failed} if self.failed is not None else {}),
        }


@dataclass(slots=True)
class ModelMonitor:
    ref: ModelReference
    counters: Counters
    ttl_s: float = 7 * 86400.0
    max_pending_labels: int = 1_000_000
    on_result: Callable[[WindowResult], None] | None = None
    next_id: int = 0
    open: dict[int, Window] = field(default_factory=dict)  # bucket (duration) or 0 (count) -> window
    retained: deque[Window] = field(default_factory=deque)
    index: dict[str, int] = field(default_factory=dict)  # prediction_id -> window id << 32 | row (no tuple per id)
    pending: OrderedDict[str, tuple[Any, float]] = field(default_factory=OrderedDict)  # label first
    closed_bucket: float = -math.inf  # duration windows: buckets <= this are closed
    clock_s: float = -math.inf  # low watermark: min over prediction partitions of their max event time
    clocks: dict[str, float] = field(default_factory=dict)  # "topic:partition" -> max event time seen
    label_clock_s: float = -math.inf  # the same low watermark over label partitions
    label_clocks: dict[str, float] = field(default_factory=dict)
    latest: WindowResult | None = None
    latest_perf: WindowResult | None = None
    latest_estimate: dict[str, float] = field(default_factory=dict)  # CBPE on the last closed window
    latest_conditional: WindowConditional | None = None  # of the last settled window
    concept: ConceptTracker = field(init=False)
    _ref_labels: np.ndarray | None = field(init=False, default=None)  # encoded reference targets
    _lookup: dict[str, float] | None = field(init=False, default=None)  # class text -> code

    def __post_init__(self) -> None:
        # Series exist from the start at 0 (so rate() works from the first event and a restarted
        # agent exports exactly the series an uninterrupted one does).
        m, c = self.ref.name, self.counters
        for stream, outcomes in (("predictions", ("ok", "invalid", "duplicate", "late")),
                                 ("labels", ("ok", "invalid", "duplicate", "expired"))):
            for outcome in outcomes:
                c.events[(m, stream, outcome)] += 0
        c.windows[m] += 0
        c.unlabelled[m] += 0
        cc = self.ref.config.concept
        self.concept = ConceptTracker(tuple(cc.detectors), regression=self.ref.config.task == "regression", hold=cc.hold)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def cfg(self):  # noqa: ANN201 - WindowConfig
        return self.ref.config.window

    # -- windows -------------------------------------------------------------------------
    def _new_window(self, start: float, end: float) -> Window:
        rd = self.ref.drift
        w = Window(
            self.next_id, start, end,
            {n: fd.empty() for n, fd in rd.features.items()},
            self.ref.prediction_drift.empty(),
            RowStore(tuple(self.ref.config.segments), self._proba_columns),
        )
        self.next_id += 1
        return w

    def _windows_by_id(self) -> dict[int, Window]:
        out = {w.id: w for w in self.retained}
        out.update({w.id: w for w in self.open.values()})
        return out

    # -- predictions ---------------------------------------------------------------------
    def add_predictions(self, p: Predictions, source: str = "") -> list[WindowResult]:
        model = self.name
        n = len(p)
        if n == 0:
            return []
        index = self.index
        ids_list = p.ids.tolist()
        if index.keys().isdisjoint(ids_list):  # the usual case, one C loop
            dup = np.zeros(n, dtype=bool)
        else:
            dup = np.fromiter((pid in index for pid in ids_list), bool, n)
        if len(set(ids_list)) < n:
            dup |= pd.Index(p.ids).duplicated(keep="first")
        if dup.any():
            self.counters.events[(model, "predictions", "duplicate")] += int(dup.sum())
            keep = ~dup
            p = Predictions(model, p.positions[keep], p.ids[keep], p.event_s[keep], p.prediction[keep], p.score[keep],
                            None if p.features is None else [f for f, k in zip(p.features, keep) if k],
                            None if p.scores is None else [x for x, k in zip(p.scores, keep) if k],
                            None if p.columns is None else p.columns.take(keep))
            n = len(p)
            if n == 0:
                return []
        if p.columns is not None:
            cols = p.columns
        else:
            spec = self.feature_spec
            cols = extract_features(p.features or [], spec.numeric, spec.categorical, spec.extra)
        # Category lookups happen once per batch and serve both the skew counts and the summaries.
        codes = {n: self.ref.drift.features[n].binner.codes(cols.values[n]) for n in self.ref.categorical
                 if n in self.ref.drift.features}
        self._count_violations(cols, codes)
        # Event time advances per partition; the model's clock is the slowest partition's, so a
        # partition consumed ahead of the others cannot close windows or expire labels early.
        self.clocks[source] = max(self.clocks.get(source, -math.inf), float(np.nanmax(p.event_s)))
        self.clock_s = min(self.clocks.values())
        results: list[WindowResult] = []
        if self.cfg.duration is None:
            start = 0
            while start < n:
                w = self.open.get(0) or self.open.setdefault(0, self._new_window(math.nan, math.nan))
                take = min(n - start, self.cfg.size - w.n)
                self._add_rows(w, p, cols, codes, slice(start, start + take), bucketed=False)
                start += take
                if w.n >= self.cfg.size:
                    del self.open[0]
                    results.extend(self._close(w))
        else:
            dur = self.cfg.duration
            buckets = np.floor(p.event_s / dur)
            late = buckets <= self.closed_bucket
            if late.any():
                self.counters.events[(model, "predictions", "late")] += int(late.sum())
            for b in np.unique(buckets[~late]):
                sel = np.flatnonzero(buckets == b)
                w = self.open.get(int(b))
                if w is None:
                    w = self.open.setdefault(int(b), self._new_window(b * dur, (b + 1) * dur))
                self._add_rows(w, p, cols, codes, sel, bucketed=True)
            watermark = self.clock_s - self.cfg.allowed_lateness
            for b in sorted(self.open):
                if (b + 1) * dur <= watermark:
                    self.closed_bucket = max(self.closed_bucket, b)
                    results.extend(self._close(self.open.pop(b)))
        results.extend(self._expire_pending())
        return results

    @property
    def _proba_columns(self) -> tuple[str, ...]:
        """Multiclass: the reference classes as the keys a ``scores`` object uses."""
        if self.ref.config.task != "multiclass_classification" or self.ref.classes is None:
            return ()
        return tuple(_class_key(c) for c in self.ref.classes)

    def _count_violations(self, cols: FeatureColumns, codes: dict[str, np.ndarray]) -> None:
        v = self.ref.schema.check_batch(cols.values, cols.missing, cols.type_errors, cols.unexpected, codes)
        m = self.name
        schema = self.counters.schema
        for (feat, kind), c in v.schema.items():
            key = (m, feat, kind)
            if kind == "unexpected" and key not in schema:
                # Unknown keys are unbounded (a producer can put ids in key names): name the first
                # MAX_UNEXPECTED_KEYS, count the rest under one series.
                if sum(1 for mm, _, kk in schema if mm == m and kk == "unexpected") >= MAX_UNEXPECTED_KEYS:
                    key = (m, "__other__", kind)
            schema[key] += c
        for (feat, kind), c in v.skew.items():
            self.counters.skew[(m, feat, kind)] += c

    def _add_rows(self, w: Window, p: Predictions, cols: FeatureColumns, codes: dict[str, np.ndarray],
                  sel: slice | np.ndarray, bucketed: bool) -> None:
        ids = p.ids[sel]
        k = ids.size
        if k == 0:
            return
        for name, fd in self.ref.drift.features.items():
            if name in codes:
                w.features[name] += FeatureSummary(fd.binner.count(codes[name][sel]))  # type: ignore[union-attr]
            else:
                w.features[name] += fd.summarise(cols.values[name][sel])
        pred_values = p.score[sel] if self.ref.config.score else self._class_texts(p.prediction[sel])
        w.prediction += self.ref.prediction_drift.summarise(pred_values)
        w.observe_times(p.event_s[sel], bucketed)
        w.n += k
        self.counters.events[(self.name, "predictions", "ok")] += k
        room = max(0, self.cfg.max_rows - w.rows.n)
        if room < k:  # beyond max_rows a window still counts for drift, but not for joins
            self.counters.unlabelled[self.name] += k - room
            ids, sel = ids[:room], (np.arange(len(p))[sel])[:room]
            k = room
            if k == 0:
                return
        segs = {c: self._segment_values(p, cols, c)[sel] for c in self.ref.config.segments}
        y_pred = self._encode(p.prediction[sel])
        proba = None
        if w.rows.proba and p.scores is not None:
            chosen = [p.scores[i] for i in np.arange(len(p))[sel]]
            proba = {c: np.fromiter((np.nan if d is None else d.get(c, np.nan) for d in chosen), float, len(chosen))
                     for c in w.rows.proba}
        row0 = w.rows.append(ids, y_pred, p.score[sel], p.event_s[sel], segs, proba)
        wid = w.id
        id_list = ids.tolist()
        base = (wid << 32) + row0
        self.index.update(zip(id_list, range(base, base + k)))
        # labels that came first: one C-level set intersection, then positions only of the hits
        if self.pending and (waiting := self.pending.keys() & id_list):
            hits = [(i, pid) for i, pid in enumerate(id_list) if pid in waiting]
            if hits:
                rows = np.array([row0 + i for i, _ in hits], dtype=np.int64)
                labels = [self.pending.pop(pid) for _, pid in hits]
                y = self._encode(np.array([lab for lab, _ in labels], dtype=object))
                lab_ts = np.array([ts for _, ts in labels], dtype=float)
                self.counters.events[(self.name, "labels", "ok")] += self._apply_labels(w, rows, y, lab_ts)

    def _segment_values(self, p: Predictions, cols: FeatureColumns, column: str) -> np.ndarray:
        if column in cols.values:
            return cols.values[column]
        return cols.extra[column]

    @property
    def feature_spec(self) -> FeatureSpec:
        """The keys this model's feature objects carry: its features, plus segment columns."""
        numeric, categorical = tuple(self.ref.numeric), tuple(self.ref.categorical)
        extra = tuple(c for c in self.ref.config.segments if c not in numeric and c not in categorical)
        return FeatureSpec(numeric, categorical, extra)

    def _encode(self, values: np.ndarray) -> np.ndarray:
        """Class values to float codes comparable with the reference target.

        Every decode route writes a prediction or label column the same way: float64 (numbers,
        booleans as 0/1) or, when a record sent a string, an object array of floats and strings.
        A number names a numeric class by its value (kept as is, so a value the reference never
        had is left out of performance later); a string names a class by its text (``"1"`` is
        class 1, ``"yes"`` is the class ``"yes"``); a number never names a string class unless
        its text is that class. Anything else is NaN."""
        arr = np.asarray(values)
        numeric_classes = self.ref.classes is None or self.ref.classes.dtype.kind in "biuf"
        if arr.dtype != object:
            out = arr.astype(float)
            if numeric_classes:
                return out
            uniq, inv = np.unique(out, return_inverse=True)  # a number names a string class by its text
            lookup = self._class_lookup()
            return np.array([lookup.get(_class_key(u), np.nan) for u in uniq.tolist()], dtype=float)[inv]
        lookup = self._class_lookup()
        out = np.full(arr.size, np.nan)
        for i, v in enumerate(arr.tolist()):
            if type(v) is str:
                out[i] = lookup.get(v, np.nan)
            elif isinstance(v, (int, float, np.integer, np.floating)):
                out[i] = float(v) if numeric_classes else lookup.get(_class_key(v), np.nan)
        return out

    def _class_texts(self, values: np.ndarray) -> np.ndarray:
        """Predicted classes as the categorical prediction-drift bins name them (the reference's
        text: ``1``, not the ``1.0`` a float column would print); regression values as they are."""
        if self.ref.config.task == "regression":
            return values
        if values.dtype == object:  # a record sent a string class: rare, per value
            out = np.empty(values.size, dtype=object)
            out[:] = [v if type(v) is str else _class_key(v) for v in values.tolist()]
            return out
        uniq, inv = np.unique(values, return_inverse=True)
        texts = np.empty(uniq.size, dtype=object)
        texts[:] = [_class_key(v) for v in uniq.tolist()]
        return texts[inv]

    def _class_lookup(self) -> dict[str, float]:
        """A class's text -> its code (numeric classes: their value; others: their index)."""
        if self._lookup is None:
            classes = self.ref.classes
            self._lookup = {} if classes is None else {
                _class_key(c): float(c) if isinstance(c, (int, float, np.number)) else float(i)
                for i, c in enumerate(classes.tolist())}
        return self._lookup

    # -- labels --------------------------------------------------------------------------
    def add_labels(self, lab: Labels, source: str = "") -> list[WindowResult]:
        model = self.name
        n = len(lab)
        if n == 0:
            return []
        self.label_clocks[source] = max(self.label_clocks.get(source, -math.inf), float(np.nanmax(lab.event_s)))
        self.label_clock_s = min(self.label_clocks.values())
        y = self._encode(lab.label)
        locs = np.fromiter(map(self.index.get, lab.ids.tolist(), repeat(-1)), np.int64, n)
        windows = self._windows_by_id()
        found = locs >= 0
        ok = dup = 0
        if found.any():
            fi = np.flatnonzero(found)
            wids, rows = locs[fi] >> 32, locs[fi] & 0xFFFFFFFF
            for wid in np.unique(wids):
                sel = wids == wid
                w = windows[int(wid)]
                r, yy, ts = rows[sel], y[fi[sel]], lab.event_s[fi[sel]]
                first = ~w.rows.labelled[r]
                _, uniq = np.unique(r, return_index=True)
                once = np.zeros(r.size, dtype=bool)
                once[uniq] = True
                good = first & once
                dup += int((~good).sum())
                ok += self._apply_labels(w, r[good], yy[good], ts[good])
        for i in np.flatnonzero(~found):
            pid = lab.ids[i]
            if pid in self.pending:
                dup += 1
            else:
                self.pending[pid] = (lab.label[i], float(lab.event_s[i]))
        self.counters.events[(model, "labels", "ok")] += ok
        if dup:
            self.counters.events[(model, "labels", "duplicate")] += dup
        out = self._expire_pending()
        # A closed window waits for its labels until the label stream's event time has passed
        # its end by label_lateness: event time, not consumption order, so a backlog read faster
        # on one topic than the other does not lose labels.
        lateness = self.cfg.label_lateness
        while self.retained and self.retained[0].end_s + lateness <= self.label_clock_s:
            out.append(self._finalise(self.retained.popleft()))
        return out

    def _apply_labels(self, w: Window, rows: np.ndarray, y: np.ndarray, label_ts: np.ndarray) -> int:
        if rows.size == 0:
            return 0
        w.rows.y_true[rows] = y
        w.rows.labelled[rows] = True
        w.perf_dirty = True
        delay = np.maximum(label_ts - w.rows.event_s[rows], 0.0)
        self.counters.observe_label_delay(self.name, delay[~np.isnan(delay)])
        return int(rows.size)

    def _expire_pending(self) -> list[WindowResult]:
        expired = 0
        # A label expires once the *prediction* stream has moved ttl past it without its
        # prediction; the label stream's own clock may run far ahead (it is often consumed faster).
        horizon = self.clock_s - self.ttl_s
        pending = self.pending
        while pending:
            pid, (_, ts) = next(iter(pending.items()))
            if ts >= horizon and len(pending) <= self.max_pending_labels:
                break
            pending.popitem(last=False)
            expired += 1
        if expired:
            self.counters.events[(self.name, "labels", "expired")] += expired
        return []

    # -- closing and judging -------------------------------------------------------------
    def _close(self, w: Window) -> list[WindowResult]:
        w.closed = True
        self.counters.windows[self.name] += 1
        out = [self._judge(w, final=False)]
        self.latest = out[0]
        self.retained.append(w)
        while len(self.retained) > self.cfg.label_retention:  # the memory bound wins over lateness
            out.append(self._finalise(self.retained.popleft()))
        return out

    def _finalise(self, w: Window) -> WindowResult:
        for earlier in self.retained:  # keep the error stream in order: settle what came before
            if not earlier.settled and earlier.id < w.id:
                self._settle(earlier)
        if not w.settled:
            self._settle(w)
        res = self._judge(w, final=True)
        ids = w.rows.ids[: w.rows.n].tolist()
        index = self.index
        for pid in ids:
            index.pop(pid, None)
        self.counters.unlabelled[self.name] += int((~w.rows.labelled[: w.rows.n]).sum())
        return res

    def flush_performance(self) -> list[WindowResult]:
        """Settle windows whose labels have come in, and re-judge closed windows whose labels
        changed since they were last judged (called on a timer, not per batch)."""
        self._settle_ready()
        out = []
        for w in self.retained:
            if w.perf_dirty:
                out.append(self._judge(w, final=False))
        return out

    def _settle_ready(self) -> None:
        """Settle retained windows in order, stopping at the first one still waiting for labels,
        so the error stream reaches the detectors in prediction order."""
        need = self.ref.config.performance.min_coverage
        for w in self.retained:
            if w.settled:
                continue
            if w.rows.coverage < need:
                break
            self._settle(w)

    def _settle(self, w: Window) -> None:
        try:
            self._settle_window(w)
        except Exception as e:  # noqa: BLE001 - a window's data must never stop the agent
            if w.failed is None:
                w.failed = f"{type(e).__name__}: {e}"[:300]
                self.counters.window_failures[self.name] += 1
            log.error("model %s window %d: settling failed (%s); the window is marked failed",
                      self.name, w.id, w.failed, exc_info=True)
        w.settled = True
        w.perf_dirty = True

    def _settle_window(self, w: Window) -> None:
        """Feed the window's error stream to the concept detectors; run its conditional tests."""
        rows = self._labelled(w)
        if rows is not None:
            y, yp, score, _ = rows
            errors = np.abs(y - yp) if self.ref.config.task == "regression" else (y != yp).astype(float)
            self.concept.update(errors)
            if self.ref.config.task != "regression" and self.ref.classes is not None:
                if self._ref_labels is None:  # the reference is fixed: encode its targets once
                    self._ref_labels = self._encode(self.ref.frame[self.ref.config.target].dropna().to_numpy(dtype=object))
                ref_labels = self._ref_labels
                binary01 = self.ref.cbpe is not None and list(self.ref.classes) == [0, 1]
                w.conditional = window_conditional(
                    y, yp, score if binary01 else None, ref_labels, self.ref.expected_errors,
                    self.ref.cbpe, self.ref.config.drift.alpha)
                if w.conditional.conditional is not None:
                    self.latest_conditional = w.conditional

    def _judge(self, w: Window, final: bool) -> WindowResult:
        """The window's verdicts; a judgement that raises on the window's data marks the window
        failed with the reason (counted, logged, in its result) and the agent goes on."""
        try:
            res = self._judge_window(w, final) if w.failed is None else None
        except Exception as e:  # noqa: BLE001 - a window's data must never stop the agent
            w.failed = f"{type(e).__name__}: {e}"[:300]
            self.counters.window_failures[self.name] += 1
            log.error("model %s window %d: judgement failed (%s); the window is marked failed",
                      self.name, w.id, w.failed, exc_info=True)
            res = None
        if res is None:
            if w.verdict is None:
                w.verdict = (DatasetDriftReport((), (), self.ref.drift.n_reference, w.n), None)
                for fs in w.features.values():
                    fs.sample = None
            w.perf_dirty = False
            res = WindowResult(self.name, w.id, w.start_s, w.end_s, w.n, w.verdict[0], w.verdict[1], {}, {},
                               w.rows.coverage, final, not (final or w.settled), failed=w.failed)
        if self.on_result is not None:
            self.on_result(res)
        return res

    def _judge_window(self, w: Window, final: bool) -> WindowResult:
        if w.verdict is None:  # drift is fixed at close; only performance changes later
            pred = None
            if w.prediction.bins.total:
                pred, _ = self.ref.prediction_drift.compare(w.prediction)
            w.verdict = (self.ref.drift.compare(w.features), pred)
            self._estimate(w)
            for fs in w.features.values():
                fs.sample = None  # raw values were only needed for exact KS/Wasserstein
        report, pred = w.verdict
        perf, ci, support = self._performance(w)
        w.perf_dirty = False
        provisional = not (final or w.settled)
        res = WindowResult(self.name, w.id, w.start_s, w.end_s, w.n, report, pred, perf, support, w.rows.coverage, final,
                           provisional, ci, {} if w.conditional is None else w.conditional.to_dict())
        if perf and (self.latest_perf is None or w.id >= self.latest_perf.window_id):
            self.latest_perf = res
        return res

    def _estimate(self, w: Window) -> None:
        """Label-free performance of a window from its scores (CBPE), long before labels."""
        cbpe = self.ref.cbpe
        if cbpe is None:
            return
        score = w.rows.score[: w.rows.n]
        score = score[np.isfinite(score)]
        if score.size:
            self.latest_estimate = cbpe.estimate(score)

    def _labelled(self, w: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray] | None:
        """``(y_true, y_pred, score, mask)`` of the window's usable labelled rows, in row order."""
        v = w.rows.view()
        lab = v["labelled"] & ~np.isnan(v["y_true"])
        if self.ref.config.task != "regression" and self.ref.classes is not None:
            # y_true/y_pred hold _encode()d codes: leave out rows whose label or prediction is a
            # class the reference never had
            codes = self._encode(np.asarray(self.ref.classes, dtype=object))
            lab &= np.isin(v["y_true"], codes) & np.isin(v["y_pred"], codes)
        if not lab.any():
            return None
        if v["proba"]:  # multiclass: the (n, k) matrix of class probabilities, when every row has one
            score = np.column_stack([v["proba"][c][lab] for c in v["proba"]])
        else:
            score = v["score"][lab] if self.ref.config.score else None
        if score is not None and np.isnan(score).any():
            score = None
        return v["y_true"][lab], v["y_pred"][lab], score, lab

    def _performance(self, w: Window) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]], dict[str, int]]:
        rows = self._labelled(w)
        if rows is None:
            return {}, {}, {}
        y, yp, score, lab = rows
        pc = self.ref.config.performance
        task = self.ref.config.task
        if task == "regression":
            res = {"all": regression_performance(y, yp, n_boot=0, min_support=pc.min_support)}
            support = {"all": int(y.size)}
        else:
            labels = self._encode(np.asarray(self.ref.classes, dtype=object)).tolist() if self.ref.classes is not None else None
            multi = task == "multiclass_classification"
            score, scores = (None, score) if multi else (score, None)
            if not self.ref.config.segments:
                res = {"all": classification_performance(y, yp, score, scores, labels=labels, n_boot=0,
                                                         min_support=pc.min_support)}
                support = {"all": int(y.size)}
            else:
                v = w.rows.view()
                frame = {c: s_[lab] for c, s_ in v["segments"].items()}
                segs = segment_performance(frame, y, yp, score, scores, spec=self.ref.segments, labels=labels,
                                           min_support=pc.min_support, pairs=pc.segment_pairs and len(self.ref.config.segments) > 1)
                res = {sp.segment: dict(sp.metrics) for sp in segs if sp.support_ok or sp.segment == "all"}
                support = {sp.segment: sp.n for sp in segs}
        perf = {seg: {m: r.value for m, r in ms.items()} for seg, ms in res.items()}
        ci = {seg: {m: [r.lower, r.upper] for m, r in ms.items() if np.isfinite(r.lower) and np.isfinite(r.upper)}
              for seg, ms in res.items()}
        return perf, ci, support
