"""The agent's own incident rules, evaluated on each window's judgement.

A rule looks at one window and says whether its condition holds (a :class:`Finding`, with a
severity and evidence) or is clear. Drift, data quality, the label-free estimate and traffic
are judged when a window closes; performance, concept drift and label arrival once it settles.
The store (:mod:`agent.incidents.store`) turns findings into incidents: one per model and kind,
deduplicated, cooled down, resolved when clear.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from agent.config import IncidentConfig
from agent.monitor.classes import ClassCodes
from agent.monitor.judgement import WindowResult
from agent.monitor.reference import ModelReference
from detectors.performance import classification_performance, regression_performance

__all__ = ["Finding", "IncidentRules", "KINDS", "SEVERITIES", "AT_CLOSE", "AT_SETTLE"]

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
AT_CLOSE = ("data_drift", "data_quality", "estimate_drop", "traffic_drop")
AT_SETTLE = ("performance_drop", "concept_drift", "labels_missing")
KINDS = AT_CLOSE + AT_SETTLE
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss", "ece"})


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's condition holds on a window."""

    kind: str
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "summary": self.summary, "evidence": self.evidence}


@dataclass(slots=True)
class Observation:
    """What a rule sees beyond the judgement: skew counts since the previous window closed, the
    label-free estimate at close, the stream detectors' state."""

    skew: dict[tuple[str, str], int] = field(default_factory=dict)  # (feature, kind) -> records
    estimate: dict[str, float] = field(default_factory=dict)
    stream_detectors: dict[str, bool] = field(default_factory=dict)


class IncidentRules:
    """The rules of one model, with the reference levels they compare against (computed once)."""

    def __init__(self, ref: ModelReference, config: IncidentConfig, classes: ClassCodes) -> None:
        self.ref = ref
        self.config = config
        task = ref.config.task
        self.metric = config.metric or ("mae" if task == "regression" else "roc_auc" if ref.config.score
                                        else "accuracy")
        self.reference_level = _reference_level(ref, classes, self.metric)
        est = None
        if ref.cbpe is not None and ref.config.score:
            scores = ref.frame[ref.config.score].dropna().to_numpy(dtype=float)
            est = ref.cbpe.estimate(scores).get("roc_auc") if scores.size else None
        self.reference_estimate = est
        self._rates: deque[float] = deque(maxlen=config.recent_windows)
        self._seen_close: set[int] = set()
        self._seen_settle: set[int] = set()

    def state(self) -> dict[str, Any]:
        """Which windows were judged (so a restart judges none twice) and the recent traffic rates."""
        return {"closed": sorted(self._seen_close), "settled": sorted(self._seen_settle), "rates": list(self._rates)}

    def restore(self, state: dict[str, Any]) -> None:
        self._seen_close = set(map(int, state.get("closed", [])))
        self._seen_settle = set(map(int, state.get("settled", [])))
        self._rates = deque(map(float, state.get("rates", [])), maxlen=self.config.recent_windows)

    def judges_close(self, window_id: int) -> bool:
        """Whether the next judgement of this window is its close (the one-time checks)."""
        return self.config.enabled and window_id not in self._seen_close

    # -- the two moments -----------------------------------------------------------------
    def evaluate(self, res: WindowResult, obs: Observation) -> tuple[list[Finding], tuple[str, ...]]:
        """Findings on this judgement and the kinds it judged (a judged kind without a finding
        counts towards resolving its incident). Each window is judged once at close and once when
        it settles; later re-judgements of the same window judge nothing new."""
        if not self.config.enabled or res.failed is not None:
            return [], ()
        out: list[Finding] = []
        judged: tuple[str, ...] = ()
        if res.window_id not in self._seen_close:
            self._seen_close.add(res.window_id)
            judged += AT_CLOSE
            out += self._at_close(res, obs)
        if (not res.provisional or res.final) and res.window_id not in self._seen_settle:
            self._seen_settle.add(res.window_id)
            judged += AT_SETTLE
            out += self._at_settle(res, obs)
        _trim(self._seen_close, res.window_id)
        _trim(self._seen_settle, res.window_id)
        return out, judged

    def _at_close(self, res: WindowResult, obs: Observation) -> list[Finding]:
        c = self.config
        out = []
        share = res.drift.drift_share
        if share >= c.drift_share:
            drifted = [r.feature for r in res.drift.features if r.drifted]
            out.append(Finding("data_drift", "critical" if share >= c.drift_share_critical else "warning",
                               f"{len(drifted)} of {len(res.drift.features)} features drifted "
                               f"({share:.0%}): {', '.join(drifted[:5])}",
                               {"drift_share": float(share), "features": drifted}))
        if res.n:
            worst = None
            for (feature, kind), count in obs.skew.items():
                rate = count / res.n
                ref_rate = self._reference_rate(feature, kind)
                if rate >= c.skew_rate and rate >= c.skew_factor * ref_rate and (worst is None or rate > worst[2]):
                    worst = (feature, kind, rate, ref_rate)
            if worst is not None:
                feature, kind, rate, ref_rate = worst
                out.append(Finding("data_quality", "critical" if rate >= 10 * c.skew_rate else "warning",
                                   f"feature {feature!r}: {kind} in {rate:.1%} of the window's records "
                                   f"(reference {ref_rate:.1%})",
                                   {"feature": feature, "skew": kind, "rate": float(rate),
                                    "reference_rate": float(ref_rate)}))
        est = obs.estimate.get("roc_auc")
        if est is not None and self.reference_estimate is not None and est < self.reference_estimate - c.estimate_margin:
            out.append(Finding("estimate_drop", "warning",
                               f"label-free ROC AUC estimate {est:.3f} against {self.reference_estimate:.3f} "
                               "on the reference", {"estimate": float(est), "reference": float(self.reference_estimate)}))
        if self.ref.config.window.duration is None and math.isfinite(res.end_s - res.start_s) and res.n:
            span = max(res.end_s - res.start_s, 1e-9)
            rate = res.n / span
            if len(self._rates) >= 2:
                recent = float(np.median(self._rates))
                if rate < c.traffic_drop * recent:
                    out.append(Finding("traffic_drop", "warning",
                                       f"{rate:.3g} predictions/s against a recent median of {recent:.3g}",
                                       {"rate": float(rate), "recent_rate": recent}))
            self._rates.append(rate)
        return out

    def _at_settle(self, res: WindowResult, obs: Observation) -> list[Finding]:
        c = self.config
        out = []
        perf = res.performance.get("all", {})
        value = perf.get(self.metric)
        lo_hi = res.ci.get("all", {}).get(self.metric)
        ref = self.reference_level
        if value is not None and ref is not None and lo_hi is not None and math.isfinite(value):
            lower = self.metric in LOWER_IS_BETTER
            lo, hi = lo_hi
            worse = lo > ref + c.performance_margin if lower else hi < ref - c.performance_margin
            if worse:
                gap = (value - ref) if lower else (ref - value)
                out.append(Finding("performance_drop", "critical" if gap >= c.performance_critical_margin else "warning",
                                   f"{self.metric} {value:.3f} [{lo:.3f}, {hi:.3f}] against {ref:.3f} on the reference",
                                   {"metric": self.metric, "value": float(value), "interval": [float(lo), float(hi)],
                                    "reference": float(ref)}))
        # The concept-vs-covariate test decides; the stream detectors (ADWIN, DDM, Page-Hinkley)
        # fire on stable error streams now and then, so they are evidence, never the trigger.
        cond = res.conditional.get("conditional")
        fired = [n for n, on in obs.stream_detectors.items() if on]
        if cond is not None and cond.get("kind") in ("concept_drift", "both"):
            out.append(Finding("concept_drift", "warning",
                               f"P(y|x) moved: realized error {cond['realized_error_window']:.3f} above the "
                               f"{cond['expected_error_window']:.3f} expected under the reference's P(y|x)"
                               + (f"; stream detectors {fired} fired" if fired else ""),
                               {"conditional": cond, "stream_detectors": fired}))
        if res.final and res.label_coverage == 0.0 and res.n:
            out.append(Finding("labels_missing", "warning", f"window {res.window_id} left label retention with no label",
                               {"window": res.window_id, "n": res.n}))
        return out

    def _reference_rate(self, feature: str, kind: str) -> float:
        if kind == "null":
            col = next((c for c in self.ref.schema.columns if c.name == feature), None)
            return float(col.null_rate) if col is not None else 0.0
        return 0.0  # out-of-range and unseen categories cannot occur in the reference itself


def _trim(seen: set[int], newest: int, keep: int = 10_000) -> None:
    if len(seen) > 2 * keep:
        for w in [w for w in seen if w < newest - keep]:
            seen.discard(w)


def _reference_level(ref: ModelReference, classes: ClassCodes, metric: str) -> float | None:
    """The watched metric on the reference (its served predictions against its targets), or
    None when the reference has no prediction column to score."""
    cfg = ref.config
    if cfg.prediction is None or cfg.prediction not in ref.frame:
        return None
    cols = [cfg.target, cfg.prediction] + ([cfg.score] if cfg.score else [])
    f = ref.frame[cols].dropna()
    if f.empty:
        return None
    if cfg.task == "regression":
        res = regression_performance(f[cfg.target].to_numpy(float), f[cfg.prediction].to_numpy(float), n_boot=0)
    else:
        y = classes.encode(f[cfg.target].to_numpy(dtype=object))
        yp = classes.encode(f[cfg.prediction].to_numpy(dtype=object))
        score = f[cfg.score].to_numpy(float) if cfg.score and cfg.task == "binary_classification" else None
        res = classification_performance(y, yp, score, labels=classes.codes.tolist(), n_boot=0)
    r = res.get(metric)
    return None if r is None or not math.isfinite(r.value) else float(r.value)
