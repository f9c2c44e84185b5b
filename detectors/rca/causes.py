"""The "root cause" and "mitigate" steps: evidence to ranked causes, causes to ranked actions.

Vocabulary (fixed; others parse it): ``data_quality``, ``covariate_shift``, ``concept_drift``,
``label_shift``, ``label_noise``, ``underrepresented_segment``. Each cause's ``confidence`` is in
[0, 1]: the strength of its evidence through ``effect / (effect + half)`` (the effect at which
the evidence counts one half), gated by its test, then adjusted by the precedence rules below.
A confidence is a ranking score, not a calibrated probability.

Evidence per cause (effects and halves):

* ``data_quality``: a :class:`~detectors.rca.quality.QualityFinding`; effect = share of rows
  hit, half 0.02. A fault also shifts its feature, so the faulty feature is not counted again as
  covariate shift.
* ``covariate_shift``: per-feature two-sample tests (numeric: Kolmogorov-Smirnov statistic;
  categorical: total variation of the level shares, chi-square test), p < 1e-3 and effect >=
  0.1; effect = the largest, half 0.08 (a feature past the gate is named).
* ``label_shift``: the class balance moved (chi-square test, total-variation effect >= 0.05,
  half 0.05) *and* the inputs moved as label shift predicts: ``P(x | y)`` unchanged, so the
  reference reweighted by class, ``w_y = p_cur(y) / p_ref(y)``, matches today's inputs. The
  share of the input drift that this removes (``explained``) multiplies the confidence and
  discounts ``covariate_shift`` by ``1 - explained^2`` (a shift of inputs that class reweighting
  explains is the label shift seen from the inputs).
* ``concept_drift``: the part of the drop left for ``P(y|x)`` (:mod:`detectors.rca.evaluate`,
  measured on the rows no pipeline fault touched), its interval and the drop's above 0;
  confidence = its share of the drop x ``strength(part, 0.02)`` (or, when placed in a slice,
  ``strength`` of the slice's error above its expectation, if larger). The slice is found among
  the slices of ``e - q`` (each row's error minus its error probability under the reference's
  P(y|x), CBPE's calibration; Welch-tested) when the model gives a score, else of the raw error. It is placed in the best
  significant slice whose error rose against the same slice's reference error.
* ``label_noise``: in that slice, the labels a confident-learning model flags and a model of
  today's rows cannot explain either (:mod:`detectors.rca.noise`). When such suspects outnumber
  the labels today's model does explain (a consistent change), the slice's share of the concept
  evidence is named ``label_noise`` and ``concept_drift`` keeps the rest.
* ``underrepresented_segment``: a significant slice that is rare in the reference (share <
  ``rare_share``, 3%), frequent today (5% of rows or more, and at least five times its reference
  share), worse than the rest of today's rows by 5 points, and bad where the reference saw it
  (its reference error 5 points above the reference's, or its reference support under 100 rows:
  too thin to tell); the one with the most excess errors is named. It is a more specific
  account of the input shift that made it frequent: it ranks above that ``covariate_shift``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ACTIONS", "CAUSES", "Action", "Cause", "actions_for", "strength"]

CAUSES = ("data_quality", "covariate_shift", "concept_drift", "label_shift", "label_noise",
          "underrepresented_segment")
ACTIONS = ("fix_pipeline", "retrain", "relabel", "collect_data", "none")


def strength(effect: float, half: float) -> float:
    """``effect / (effect + half)`` for ``effect >= 0`` (0 otherwise): 0.5 at ``half``.

    >>> strength(0.1, 0.1), strength(0.0, 0.1)
    (0.5, 0.0)
    """
    if not np.isfinite(effect) or effect <= 0:
        return 0.0
    return float(effect / (effect + half))


@dataclass(frozen=True, slots=True)
class Cause:
    """One named cause with its evidence.

    >>> c = Cause("data_quality", 0.97, "car_value scaled x1000", {"factor": 1000.0}, feature="car_value")
    >>> Cause.from_dict(c.to_dict()) == c
    True
    """

    cause: str
    confidence: float
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    feature: str | None = None
    segment: str | None = None

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise ValueError(f"cause must be one of {CAUSES}, got {self.cause!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "feature": self.feature, "segment": self.segment,
                "confidence": round(float(self.confidence), 4), "summary": self.summary,
                "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cause:
        return cls(str(d["cause"]), float(d["confidence"]), str(d["summary"]), dict(d.get("evidence", {})),
                   d.get("feature"), d.get("segment"))


@dataclass(frozen=True, slots=True)
class Action:
    """One mitigation, in the form the retraining launcher consumes.

    ``fix_pipeline``: ``feature``, ``change``; ``retrain``: ``segments`` to cover,
    ``stale_segments`` (concept drift there: the reference's rows are out of date), ``exclude_ids``
    (label-noise suspects); ``relabel``: ``ids``; ``collect_data``: ``segment``.

    >>> a = Action("relabel", "labels of 12 rows look wrong", {"ids": ["a", "b"]})
    >>> Action.from_dict(a.to_dict()) == a
    True
    """

    action: str
    reason: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, **dict(self.params), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Action:
        params = {k: v for k, v in d.items() if k not in ("action", "reason")}
        return cls(str(d["action"]), str(d.get("reason", "")), params)


def actions_for(causes: Sequence[Cause], *, exclude_ids: Sequence[Any] = (), max_ids: int = 10_000) -> list[Action]:
    """Ranked actions for ranked causes: one per distinct remedy, in the order of the first
    cause that calls for it; every ``retrain`` merged into one (segments to cover, rows to
    exclude); ``none`` alone when no cause was named.

    >>> [a.action for a in actions_for([Cause("data_quality", 0.9, "x", {"check": "null_spike"}, feature="f")])]
    ['fix_pipeline']
    >>> [a.action for a in actions_for([])]
    ['none']
    """
    out: list[Action] = []
    segments: list[str] = []
    stale: list[str] = []  # concept drift there: the reference's labels are out of date
    retrain_reasons: list[str] = []
    retrain_at: int | None = None
    ids = [i for i in exclude_ids][:max_ids]

    def want_retrain(reason: str, segment: str | None) -> None:
        nonlocal retrain_at
        if retrain_at is None:
            retrain_at = len(out)
            out.append(Action("retrain", ""))  # placeholder, filled below
        retrain_reasons.append(reason)
        if segment and segment not in segments:
            segments.append(segment)

    for c in causes:
        if c.cause == "data_quality":
            out.append(Action("fix_pipeline", f"{c.feature}: {c.summary}",
                              {"feature": c.feature, "change": c.evidence.get("check"),
                               "detail": dict(c.evidence.get("detail", {}))}))
        elif c.cause == "underrepresented_segment":
            out.append(Action("collect_data", f"{c.segment} is rare in the reference and frequent now",
                              {"segment": c.segment}))
            want_retrain("cover the under-represented segment", c.segment)
        elif c.cause == "label_noise":
            out.append(Action("relabel", c.summary, {"ids": ids, "segment": c.segment}))
            want_retrain("retrain without the suspect labels", c.segment)
        elif c.cause == "concept_drift":
            want_retrain("P(y|x) moved: learn today's relation", c.segment)
            if c.segment and c.segment not in stale:
                stale.append(c.segment)
        elif c.cause == "covariate_shift":
            want_retrain("inputs moved: weight training towards today's inputs", c.segment)
        elif c.cause == "label_shift":
            want_retrain("the class balance moved: train on today's balance", None)
    if retrain_at is not None:
        out[retrain_at] = Action("retrain", "; ".join(dict.fromkeys(retrain_reasons)),
                                 {"segments": segments, "stale_segments": stale, "exclude_ids": ids})
    return out or [Action("none", "no cause reached the confidence to act on")]


def ranked(causes: Sequence[Cause], min_confidence: float) -> list[Cause]:
    """Causes at or above ``min_confidence``, best first (ties keep the vocabulary's order)."""
    kept = [c for c in causes if c.confidence >= min_confidence]
    return sorted(kept, key=lambda c: (-c.confidence, CAUSES.index(c.cause)))
