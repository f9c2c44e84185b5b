"""Confidence intervals for performance metrics: Wilson (proportions), DeLong and Hanley-McNeil
(ROC AUC). Pure functions of counts or scores; the bootstrap for the other metrics lives with
them in :mod:`detectors.performance`."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

__all__ = ["wilson_interval", "delong_interval", "hanley_mcneil_interval"]


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (NaN bounds when ``n == 0``).

    >>> [round(b, 3) for b in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    if n <= 0:
        return float("nan"), float("nan")
    z = float(ndtri(0.5 + confidence / 2))
    phat = successes / n
    den = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / den
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _midrank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    s = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    out = np.empty(len(x))
    out[order] = ranks_sorted
    return out


def delong_interval(score: Any, positive: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """ROC AUC with DeLong's variance: ``(auc, lower, upper)``; NaN when one class is absent.

    Normal approximation, clipped to [0, 1]; it is too narrow for tiny classes (< ~20 rows).

    >>> auc, lo, hi = delong_interval([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> auc, round(lo, 3), hi
    (0.75, 0.057, 1.0)
    """
    s = np.asarray(score, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    x, yneg = s[pos], s[~pos]
    m, n = len(x), len(yneg)
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    r_all = _midrank(np.concatenate([x, yneg]))
    v10 = (r_all[:m] - _midrank(x)) / n
    v01 = 1.0 - (r_all[m:] - _midrank(yneg)) / m
    auc = float(v10.mean())
    var = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    z = float(ndtri(0.5 + confidence / 2))
    half = z * np.sqrt(var)
    return auc, float(max(0.0, auc - half)), float(min(1.0, auc + half))


def hanley_mcneil_interval(auc: float, n_pos: float, n_neg: float, confidence: float = 0.95) -> tuple[float, float]:
    """Hanley & McNeil (1982, Radiology 143) normal interval for an AUC from class counts only.

    >>> [round(b, 3) for b in hanley_mcneil_interval(0.75, 2, 2)]
    [0.208, 1.0]
    """
    if not np.isfinite(auc) or n_pos <= 0 or n_neg <= 0:
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    half = float(ndtri(0.5 + confidence / 2)) * np.sqrt(max(var, 0.0))
    return float(max(0.0, auc - half)), float(min(1.0, auc + half))
