"""One model's monitor: routes decoded batches into windows and hands them on.

It owns the windows of one model (open, and closed ones waiting for labels) and routes: rows into
windows, labels to their rows through the join index (:mod:`agent.monitor.join`), closed and
settled windows to the judgement (:mod:`agent.monitor.judgement`), event time to the two clocks
(:mod:`agent.monitor.clock`). Everything here is numpy over a batch; the only per-record Python is
dictionary work for the prediction-id join.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from agent.config import WindowConfig
from agent.decode.features import FeatureColumns, FeatureSpec, extract_features
from agent.decode.records import Labels, Predictions
from agent.monitor.classes import ClassCodes
from agent.monitor.clock import EventClock
from agent.monitor.join import JoinIndex
from agent.monitor.judgement import WindowJudge, WindowResult
from agent.monitor.reference import ModelReference
from agent.monitor.windows import RowStore, Window
from agent.state.counters import Counters
from detectors.drift import FeatureSummary

__all__ = ["ModelMonitor", "WindowResult", "MAX_UNEXPECTED_KEYS"]

MAX_UNEXPECTED_KEYS = 100  # distinct unexpected feature names exported per model


@dataclass(slots=True)
class ModelMonitor:
    ref: ModelReference
    counters: Counters
    ttl_s: float = 7 * 86400.0
    max_pending_labels: int = 1_000_000
    on_result: Callable[[WindowResult], None] | None = None
    on_final: Callable[[ModelMonitor, Window], None] | None = None  # a window leaving retention, before its rows go
    next_id: int = 0
    open: dict[int, Window] = field(default_factory=dict)  # bucket (duration) or 0 (count) -> window
    retained: deque[Window] = field(default_factory=deque)  # closed, waiting for labels
    closed_bucket: float = -math.inf  # duration windows: buckets <= this are closed
    clock: EventClock = field(default_factory=EventClock)  # prediction stream
    label_clock: EventClock = field(default_factory=EventClock)
    join: JoinIndex = field(init=False)
    classes: ClassCodes = field(init=False)
    judge: WindowJudge = field(init=False)

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
        self.join = JoinIndex(self.ttl_s, self.max_pending_labels)
        self.classes = ClassCodes(self.ref)
        self.judge = WindowJudge(self.ref, self.counters, self.classes, self.on_result)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def cfg(self) -> WindowConfig:
        return self.ref.config.window

    # what the service publishes (the latest verdicts are the judgement's)
    @property
    def latest(self) -> WindowResult | None:
        return self.judge.latest

    @property
    def latest_perf(self) -> WindowResult | None:
        return self.judge.latest_perf

    @property
    def latest_estimate(self) -> dict[str, float]:
        return self.judge.latest_estimate

    @property
    def latest_conditional(self) -> Any:
        return self.judge.latest_conditional

    @property
    def concept(self) -> Any:
        return self.judge.concept

    @property
    def pending(self) -> Any:
        """Labels waiting for their prediction (the join's)."""
        return self.join.pending

    # -- windows -------------------------------------------------------------------------
    def _new_window(self, start: float, end: float) -> Window:
        rd = self.ref.drift
        w = Window(
            self.next_id, start, end,
            {n: fd.empty() for n, fd in rd.features.items()},
            self.ref.prediction_drift.empty(),
            RowStore(tuple(self.ref.config.segments), self.classes.proba_columns, self._feature_kinds),
        )
        self.next_id += 1
        return w

    @property
    def _feature_kinds(self) -> dict[str, str]:
        if not self.cfg.keep_features:
            return {}
        numeric = set(self.ref.numeric)
        return {n: "numeric" if n in numeric else "categorical" for n in self.ref.drift.features}

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
        ids_list = p.ids.tolist()
        dup = self.join.known(ids_list)
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
        self.clock.observe(source, float(np.nanmax(p.event_s)))
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
            watermark = self.clock.now - self.cfg.allowed_lateness
            for b in sorted(self.open):
                if (b + 1) * dur <= watermark:
                    self.closed_bucket = max(self.closed_bucket, b)
                    results.extend(self._close(self.open.pop(b)))
        self._expire_pending()
        return results

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
        pred_values = p.score[sel] if self.ref.config.score else self.classes.texts(p.prediction[sel])
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
        y_pred = self.classes.encode(p.prediction[sel])
        proba = None
        if w.rows.proba and p.scores is not None:
            chosen = [p.scores[i] for i in np.arange(len(p))[sel]]
            proba = {c: np.fromiter((np.nan if d is None else d.get(c, np.nan) for d in chosen), float, len(chosen))
                     for c in w.rows.proba}
        feats = {c: cols.values[c][sel] for c in w.rows.features} if w.rows.features else None
        row0 = w.rows.append(ids, y_pred, p.score[sel], p.event_s[sel], segs, proba, feats)
        id_list = ids.tolist()
        self.join.add(id_list, w.id, row0)
        hits = self.join.take_waiting(id_list)  # labels that came first
        if hits:
            rows = np.array([row0 + i for i, _, _ in hits], dtype=np.int64)
            y = self.classes.encode(np.array([lab for _, lab, _ in hits], dtype=object))
            lab_ts = np.array([ts for _, _, ts in hits], dtype=float)
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

    # -- labels --------------------------------------------------------------------------
    def add_labels(self, lab: Labels, source: str = "") -> list[WindowResult]:
        model = self.name
        n = len(lab)
        if n == 0:
            return []
        label_clock = self.label_clock.observe(source, float(np.nanmax(lab.event_s)))
        y = self.classes.encode(lab.label)
        locs = self.join.locate(lab.ids.tolist())
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
        wait = self.join.wait
        for i in np.flatnonzero(~found).tolist():
            if not wait(lab.ids[i], lab.label[i], float(lab.event_s[i])):
                dup += 1
        self.counters.events[(model, "labels", "ok")] += ok
        if dup:
            self.counters.events[(model, "labels", "duplicate")] += dup
        self._expire_pending()
        out: list[WindowResult] = []
        # A closed window waits for its labels until the label stream's event time has passed
        # its end by label_lateness: event time, not consumption order, so a backlog read faster
        # on one topic than the other does not lose labels.
        lateness = self.cfg.label_lateness
        while self.retained and self.retained[0].end_s + lateness <= label_clock:
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

    def _expire_pending(self) -> None:
        # A label expires once the *prediction* stream has moved ttl past it without its
        # prediction; the label stream's own clock may run far ahead (it is often consumed faster).
        expired = self.join.expire(self.clock.now)
        if expired:
            self.counters.events[(self.name, "labels", "expired")] += expired

    # -- closing -------------------------------------------------------------------------
    def _close(self, w: Window) -> list[WindowResult]:
        w.closed = True
        self.counters.windows[self.name] += 1
        out = [self.judge.close(w)]
        self.retained.append(w)
        while len(self.retained) > self.cfg.label_retention:  # the memory bound wins over lateness
            out.append(self._finalise(self.retained.popleft()))
        return out

    def _finalise(self, w: Window) -> WindowResult:
        for earlier in self.retained:  # keep the error stream in order: settle what came before
            if not earlier.settled and earlier.id < w.id:
                self.judge.settle(earlier)
        if not w.settled:
            self.judge.settle(w)
        res = self.judge.judge(w, final=True)
        if self.on_final is not None:
            self.on_final(self, w)
        self.join.forget(w.rows.ids[: w.rows.n].tolist())
        self.counters.unlabelled[self.name] += int((~w.rows.labelled[: w.rows.n]).sum())
        return res

    def flush_performance(self) -> list[WindowResult]:
        """Settle windows whose labels have come in, and re-judge closed windows whose labels
        changed since they were last judged (called on a timer, not per batch)."""
        self._settle_ready()
        out = []
        for w in self.retained:
            if w.perf_dirty:
                out.append(self.judge.judge(w, final=False))
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
            self.judge.settle(w)

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything the monitor holds, for the checkpoint codec: JSON-able values, numpy
        arrays, and the windows themselves (the codec encodes them). The keys are checkpoint
        format 3's."""
        return {
            "next_id": self.next_id, "closed_bucket": self.closed_bucket,
            "clock_s": self.clock.now, "clocks": dict(self.clock.sources),
            "label_clock_s": self.label_clock.now, "label_clocks": dict(self.label_clock.sources),
            "pending": self.join.state(), "open": dict(self.open), "retained": list(self.retained),
            **self.judge.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`state` (with the windows decoded by the codec): the join index is
        rebuilt from the windows' rows, and the latest verdicts re-derived without re-recording."""
        bucket = state["closed_bucket"]  # JSON has no infinity: -inf is written as null
        self.next_id, self.closed_bucket = int(state["next_id"]), -math.inf if bucket is None else float(bucket)
        self.clock = EventClock.from_state({"now": state["clock_s"], "sources": state["clocks"]})
        self.label_clock = EventClock.from_state({"now": state["label_clock_s"], "sources": state["label_clocks"]})
        self.open = dict(state["open"])
        self.retained = deque(state["retained"])
        self.join = JoinIndex.from_state(state["pending"], [*self.retained, *self.open.values()], self.ttl_s,
                                         self.max_pending_labels)
        self.judge.restore(state, list(self.retained))
