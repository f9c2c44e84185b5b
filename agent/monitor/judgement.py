"""The judgement of a model's windows: drift at close, performance as labels arrive, and the
concept tests when a window settles. A judgement that raises on a window's data marks that window
failed; the agent goes on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from agent.monitor.classes import ClassCodes
from agent.monitor.concept import ConceptTracker, WindowConditional, window_conditional
from agent.monitor.reference import ModelReference
from agent.monitor.windows import Window
from agent.state.counters import Counters
from detectors.drift import DatasetDriftReport
from detectors.performance import classification_performance, regression_performance
from detectors.result import DriftResult
from detectors.segments import segment_performance

__all__ = ["WindowJudge", "WindowResult"]

log = logging.getLogger(__name__)


def _undecided(r: DriftResult) -> dict[str, Any]:
    """A score no verdict policy judged (its ``drifted`` means nothing): DriftResult.to_dict less it."""
    d = r.to_dict()
    del d["drifted"]
    return d


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
            "scores": [_undecided(r) for r in self.drift.scores],
            "prediction_drift": None if pd_ is None else _undecided(pd_),
            "performance": self.performance, "ci": self.ci, "support": self.support,
            "label_coverage": self.label_coverage, "provisional": self.provisional, **self.conditional,
            **({"failed": self.failed} if self.failed is not None else {}),
        }


class WindowJudge:
    """Judges one model's windows against its reference and keeps the latest verdicts that the
    metrics show. ``on_result`` receives every judgement (the window journal)."""

    def __init__(self, ref: ModelReference, counters: Counters, classes: ClassCodes,
                 on_result: Callable[[WindowResult], None] | None = None) -> None:
        self.ref = ref
        self.counters = counters
        self.classes = classes
        self.on_result = on_result
        cc = ref.config.concept
        self.concept = ConceptTracker(tuple(cc.detectors), regression=ref.config.task == "regression", hold=cc.hold)
        self.latest: WindowResult | None = None  # of the last closed window
        self.latest_perf: WindowResult | None = None  # of the newest window with performance
        self.latest_estimate: dict[str, float] = {}  # CBPE on the last closed window
        self.latest_conditional: WindowConditional | None = None  # of the last settled window

    @property
    def name(self) -> str:
        return self.ref.name

    def close(self, w: Window) -> WindowResult:
        """A window closed: its drift verdicts, fixed from now on."""
        res = self.judge(w, final=False)
        self.latest = res
        return res

    def settle(self, w: Window) -> None:
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
                ref_labels = self.classes.reference_labels
                binary01 = self.ref.cbpe is not None and list(self.ref.classes) == [0, 1]
                w.conditional = window_conditional(
                    y, yp, score if binary01 else None, ref_labels, self.ref.expected_errors,
                    self.ref.cbpe, self.ref.config.drift.alpha)
                if w.conditional.conditional is not None:
                    self.latest_conditional = w.conditional

    def judge(self, w: Window, final: bool) -> WindowResult:
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
            self.estimate(w)
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

    def estimate(self, w: Window) -> None:
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
            codes = self.classes.codes
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
            labels = self.classes.codes.tolist() if self.ref.classes is not None else None
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

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"concept": self.concept.state()}

    def restore(self, state: dict[str, Any], retained: list[Window]) -> None:
        """The concept detectors' state, and the latest verdicts the metrics show re-derived
        from the restored windows, without calling ``on_result`` (they were recorded already)."""
        self.concept.restore(state["concept"])
        for w in retained:
            if w.conditional is not None and w.conditional.conditional is not None:
                self.latest_conditional = w.conditional
        cb, self.on_result = self.on_result, None
        try:
            for w in retained:
                self.latest = self.judge(w, final=False)
            if retained:
                self.estimate(retained[-1])
        finally:
            self.on_result = cb
