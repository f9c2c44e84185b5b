"""One place that turns statistics into drift verdicts.

A feature drifts when its test is significant after multiple-testing correction *and* its
effect size reaches a floor. Significance alone alarms on trivial shifts in huge windows
(every p-value goes to zero as n grows); effect size alone ignores sampling noise in small
windows. Pure distances (PSI, Jensen-Shannon, Wasserstein) have no p-value and are judged on
their threshold alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np

from detectors._checks import check_real
from detectors.result import DriftResult

__all__ = ["VerdictPolicy", "adjust_pvalues", "decide"]

Correction = Literal["bh", "bonferroni", "none"]


def adjust_pvalues(p_values: Sequence[float], correction: Correction = "bh") -> np.ndarray:
    """Adjusted p-values across features (compare each with alpha).

    ``bh``: Benjamini-Hochberg step-up, controls the false discovery rate for independent or
    positively dependent tests (Benjamini & Hochberg 1995, JRSS-B 57); equals
    ``scipy.stats.false_discovery_control(p, method="bh")``. ``bonferroni``: ``min(1, m p)``,
    controls the family-wise error rate under any dependence.

    >>> adjust_pvalues([0.01, 0.04, 0.03], "bh").round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    if not np.all((p >= 0) & (p <= 1)):  # NaN fails too: one NaN would blank every BH value
        raise ValueError("p-values must lie in [0, 1] (no NaN)")
    if correction == "none":
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(1.0, p * p.size)
    if correction != "bh":
        raise ValueError(f"correction must be 'bh', 'bonferroni' or 'none', got {correction!r}")
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(ranked, 1.0)
    return out


@dataclass(frozen=True, slots=True)
class VerdictPolicy:
    """How significance and effect size combine into a verdict.

    ``alpha``: level of the corrected test. ``effect_floor``: minimum effect size for tests
    with a p-value (normalised Wasserstein for KS, Jensen-Shannon distance for chi-square).
    ``distance_threshold``: threshold for pure distances (PSI uses ``psi_threshold``).

    >>> VerdictPolicy(alpha=0.01).threshold_for("psi"), VerdictPolicy().threshold_for("js")
    (0.2, 0.1)
    """

    alpha: float = 0.05
    correction: Correction = "bh"
    effect_floor: float = 0.1
    distance_threshold: float = 0.1
    psi_threshold: float = 0.2

    def __post_init__(self) -> None:
        check_real("alpha", self.alpha, 0.0, 1.0, low_open=True, high_open=True)
        if self.correction not in ("bh", "bonferroni", "none"):
            raise ValueError(f"correction must be 'bh', 'bonferroni' or 'none', got {self.correction!r}")
        for name in ("effect_floor", "distance_threshold", "psi_threshold"):
            check_real(name, getattr(self, name), 0.0)

    def threshold_for(self, method: str) -> float:
        return self.psi_threshold if method == "psi" else self.distance_threshold


def decide(results: Sequence[DriftResult], policy: VerdictPolicy = VerdictPolicy()) -> tuple[DriftResult, ...]:
    """Final verdicts for a set of features tested on the same window.

    p-values are corrected across the features that have one; the returned results carry the
    *adjusted* p-value, so what is exported is what was compared with alpha.

    >>> raw = [DriftResult("a", "ks", 0.2, 0.01, 0.3, False), DriftResult("b", "ks", 0.1, 0.04, 0.05, False),
    ...        DriftResult("c", "psi", 0.25, None, 0.25, False)]
    >>> [(r.feature, round(r.p_value, 2) if r.p_value is not None else None, r.drifted) for r in decide(raw)]
    [('a', 0.02, True), ('b', 0.04, False), ('c', None, True)]
    """
    with_p = [i for i, r in enumerate(results) if r.p_value is not None]
    adjusted = adjust_pvalues([p for r in results if (p := r.p_value) is not None], policy.correction)
    out = list(results)
    for i, p in zip(with_p, adjusted):
        r = results[i]
        out[i] = replace(r, p_value=float(p), drifted=bool(p < policy.alpha and r.effect_size >= policy.effect_floor))
    for i, r in enumerate(results):
        if r.p_value is None:
            out[i] = replace(r, drifted=bool(r.effect_size >= policy.threshold_for(r.method)))
    return tuple(out)
