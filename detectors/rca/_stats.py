"""Slice statistics from sufficient statistics (counts, sums, sums of squares), vectorised.

Every slice is tested against the rest of the window from the per-level sums that
``np.bincount`` gives, so no row is revisited; the p-values are scipy's own functions on those
numbers (``binom.sf`` is what :func:`scipy.stats.binomtest` returns for ``alternative="greater"``;
:func:`scipy.stats.ttest_ind_from_stats` is what :func:`scipy.stats.ttest_ind` calls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from detectors.intervals import wilson_interval

__all__ = ["Totals", "SliceStats", "compare", "evaluate", "interval"]


@dataclass(frozen=True, slots=True)
class Totals:
    """Window totals; losses are centred on the window mean (``shift``) before summing, so
    variances from sums of squares keep their precision when the mean is far from zero."""

    n: int
    sum: float     # sum of (centred) errors; ~0 for losses, the error count for 0/1 errors
    sumsq: float   # sum of squared centred losses (unused for 0/1 errors)
    shift: float   # window mean loss subtracted before summing (0 for 0/1 errors)
    binary: bool


@dataclass(frozen=True, slots=True)
class SliceStats:
    """Per-candidate statistics (arrays of one length)."""

    error: np.ndarray       # slice error rate or mean loss
    rest_error: np.ndarray  # rest of the window
    degradation: np.ndarray
    score: np.ndarray       # support * degradation
    p_value: np.ndarray     # one-sided: slice worse than the rest


def _welch_greater(m1: np.ndarray, v1: np.ndarray, n1: np.ndarray,
                   m2: np.ndarray, v2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Welch's one-sided p-value (``ttest_ind(a, b, equal_var=False, alternative="greater")``).

    When both groups are constant the statistic is undefined (0/0 or d/0): the p-value is then
    0.0 if the slice mean is larger, else 1.0 (the ordering is certain, not NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = stats.ttest_ind_from_stats(m1, np.sqrt(v1), n1, m2, np.sqrt(v2), n2,
                                       equal_var=False, alternative="greater").pvalue
    p = np.asarray(p, dtype=np.float64)
    degenerate = (v1 <= 0) & (v2 <= 0)
    return np.where(degenerate, np.where(m1 > m2, 0.0, 1.0), p)


def compare(n1: np.ndarray, sum1: np.ndarray, sq1: np.ndarray | None, n2: np.ndarray, sum2: np.ndarray,
            sq2: np.ndarray | None, totals: Totals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(error of group 1, error of group 2, one-sided p-value that group 1 is worse).

    0/1 errors: exact binomial ``P(X >= k1)``, ``X ~ Binomial(n1, k2 / n2)`` (group 2's rate taken
    as known). Losses: Welch's t-test on the two groups' means and sample variances."""
    n1 = n1.astype(np.float64)
    n2 = n2.astype(np.float64)
    if totals.binary:
        err1, err2 = sum1 / n1, np.clip(sum2 / n2, 0.0, 1.0)
        p = stats.binom.sf(sum1 - 1, n1, err2)
    else:
        assert sq1 is not None and sq2 is not None
        m1, m2 = sum1 / n1, sum2 / n2
        with np.errstate(divide="ignore", invalid="ignore"):
            v1 = np.maximum(sq1 - sum1 * m1, 0.0) / (n1 - 1)
            v2 = np.maximum(sq2 - sum2 * m2, 0.0) / (n2 - 1)
        err1, err2 = m1 + totals.shift, m2 + totals.shift
        p = _welch_greater(err1, v1, n1, err2, v2, n2)
    return err1, err2, np.clip(p, 0.0, 1.0)


def evaluate(support: np.ndarray, sums: np.ndarray, sumsq: np.ndarray | None, totals: Totals) -> SliceStats:
    """Slice vs rest-of-window statistics for candidates with ``0 < support < n``.

    ``sums`` are the slices' error counts (0/1) or sums of centred losses; ``sumsq`` their sums
    of squared centred losses (losses only)."""
    rest_sq = None if sumsq is None else totals.sumsq - sumsq
    err, rest, p = compare(support, sums, sumsq, totals.n - support, totals.sum - sums, rest_sq, totals)
    deg = err - rest
    return SliceStats(err, rest, deg, support * deg, p)


def interval(support: int, total: float, total_sq: float, totals: Totals, confidence: float) -> tuple[float, float]:
    """Interval for one slice's error: Wilson for a 0/1 error rate, Student t for a mean loss
    (``total``/``total_sq`` are the slice's (centred) sums, as in :func:`evaluate`)."""
    if totals.binary:
        return wilson_interval(total, support, confidence)
    if support < 2:
        return float("nan"), float("nan")
    mean = total / support
    var = max(total_sq - total * mean, 0.0) / (support - 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, support - 1)) * np.sqrt(var / support)
    return float(mean + totals.shift - half), float(mean + totals.shift + half)
