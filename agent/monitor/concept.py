"""Concept drift for one model: streaming detectors on the error stream, plus per-window tests
that separate "the inputs moved" from "P(y | x) moved" and detect label (prior) shift.

The error stream is fed one *settled* window at a time, in prediction order: a window settles
when its label coverage reaches ``min_coverage`` or it leaves label retention. Feeding in label
arrival order would mix label delay into the signal; waiting for settlement keeps the stream in
the time order of the predictions it judges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.concept import ADWIN, DDM, EDDM, KSWIN, PageHinkley
from detectors.conditional import ConditionalVerdict, concept_vs_covariate, label_shift_test
from detectors.result import DriftResult

__all__ = ["DETECTORS", "ConceptTracker", "WindowConditional"]

DETECTORS: dict[str, type] = {"adwin": ADWIN, "ddm": DDM, "eddm": EDDM, "page_hinkley": PageHinkley, "kswin": KSWIN}
BINARY_ONLY = frozenset({"ddm", "eddm"})  # they model a Bernoulli error rate


@dataclass(frozen=True, slots=True)
class WindowConditional:
    """Per-window conditional verdicts, computed once when the window settles."""

    label_shift: DriftResult | None
    conditional: ConditionalVerdict | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.label_shift is not None:
            out["label_shift"] = self.label_shift.to_dict()
        if self.conditional is not None:
            out["conditional"] = self.conditional.to_dict()
        return out


@dataclass(slots=True)
class ConceptTracker:
    """Streaming detectors of one model and what they have seen."""

    names: tuple[str, ...]
    regression: bool = False
    hold: int = 5000  # a detection stays "detected" for this many outcomes
    detectors: dict[str, Any] = field(default_factory=dict)
    outcomes: int = 0
    last_drift: dict[str, int] = field(default_factory=dict)  # detector -> outcome index
    drifts: dict[str, int] = field(default_factory=dict)  # detector -> detections so far

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown concept-drift detectors {unknown}; known: {sorted(DETECTORS)}")
        if not self.detectors:
            usable = [n for n in self.names if not (self.regression and n in BINARY_ONLY)]
            self.detectors = {n: DETECTORS[n]() for n in usable}
        for n in self.detectors:
            self.drifts.setdefault(n, 0)

    def update(self, errors: np.ndarray) -> None:
        """Feed errors (0/1, or absolute errors for regression) in prediction order."""
        if errors.size == 0:
            return
        for name, det in self.detectors.items():
            verdict = det.update(errors)
            if verdict.drifts:
                self.drifts[name] += len(verdict.drifts)
                self.last_drift[name] = self.outcomes + verdict.drifts[-1]
        self.outcomes += int(errors.size)

    def detected(self) -> dict[str, bool]:
        return {n: n in self.last_drift and self.outcomes - self.last_drift[n] < self.hold for n in self.detectors}

    def state(self) -> dict[str, Any]:
        return {"names": list(self.names), "outcomes": self.outcomes, "last_drift": self.last_drift,
                "drifts": self.drifts, "detectors": {n: d.state() for n, d in self.detectors.items()}}

    def restore(self, s: dict[str, Any]) -> None:
        self.outcomes = int(s["outcomes"])
        self.last_drift = {k: int(v) for k, v in s["last_drift"].items()}
        self.drifts = {k: int(v) for k, v in s["drifts"].items()}
        for n, st in s["detectors"].items():
            if n in self.detectors:
                self.detectors[n] = DETECTORS[n].from_state(st)


def window_conditional(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray | None, reference_labels: np.ndarray,
                       reference_expected_errors: np.ndarray | None, cbpe: Any, alpha: float) -> WindowConditional:
    """Label shift and concept-vs-covariate verdicts on a window's labelled rows."""
    if y_true.size < 2:
        return WindowConditional(None, None)
    shift = label_shift_test(reference_labels, y_true, alpha=alpha)
    cond = None
    if cbpe is not None and score is not None and reference_expected_errors is not None and np.isfinite(score).all():
        q_win = cbpe.expected_errors(score)
        errors = (y_pred != y_true).astype(float)
        cond = concept_vs_covariate(reference_expected_errors, q_win, errors, alpha=alpha)
    return WindowConditional(shift, cond)
