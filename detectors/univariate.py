"""Univariate two-sample drift statistics on samples or on reference-binned counts.

Every function here is a pure computation returning ``(statistic, p_value)`` or a distance;
turning those into a verdict happens in :mod:`detectors.verdict`. Histogram statistics take two
:class:`~detectors.binning.BinCounts` built on the same reference edges and are exact on those
bins; KS and Wasserstein are exact on samples and bounded on bins (see each docstring).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial import distance

from detectors.binning import BinCounts

__all__ = [
    "reference_prefix",
    "ks_wasserstein_samples",
    "ks_samples",
    "ks_bins",
    "chi2_bins",
    "psi_bins",
    "jensen_shannon_bins",
    "hellinger_bins",
    "wasserstein_samples",
    "wasserstein_bins",
]

_SCIPY_EXACT_MAX_N = 10_000  # scipy's ks_2samp(mode="auto") switches to the asymptotic p here


def _check_same_edges(a: BinCounts, b: BinCounts) -> None:
    if a.edges.shape != b.edges.shape or not np.array_equal(a.edges, b.edges):
        raise ValueError("both summaries must be built on the same reference edges")


def _proportions(a: BinCounts, b: BinCounts) -> tuple[np.ndarray, np.ndarray]:
    _check_same_edges(a, b)
    if a.total == 0 or b.total == 0:
        raise ValueError("cannot compare an empty summary (no non-null values)")
    return a.counts / a.total, b.counts / b.total


def ks_samples(reference_sorted: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic ``D = sup |F_ref - F_win|`` and its p-value.

    ``reference_sorted`` must be sorted and NaN-free (sort once at fit time; this is what makes
    repeated windows cheap). The p-value follows scipy's ``ks_2samp(mode="auto")``: exact for
    samples of at most 10,000 values, else Smirnov's asymptotic distribution ``kstwo(round(en))``
    with ``en = m n / (m + n)``. Assumes continuous data: with many ties the test is
    conservative. Reference: Hodges (1958), Arkiv för Matematik 3.

    >>> d, p = ks_samples(np.arange(100.0), np.arange(100.0))
    >>> d, p > 0.99
    (0.0, True)
    """
    win = np.sort(np.asarray(window, dtype=float))
    win = win[~np.isnan(win)]
    n1, n2 = reference_sorted.size, win.size
    if n1 == 0 or n2 == 0:
        raise ValueError("KS needs non-empty reference and window")
    if max(n1, n2) <= _SCIPY_EXACT_MAX_N:
        res = stats.ks_2samp(reference_sorted, win)
        return float(res.statistic), float(res.pvalue)
    pooled = np.concatenate([reference_sorted, win])
    cdf1 = np.searchsorted(reference_sorted, pooled, side="right") / n1
    cdf2 = np.searchsorted(win, pooled, side="right") / n2
    d = float(np.max(np.abs(cdf1 - cdf2)))
    m, n = max(n1, n2), min(n1, n2)
    en = m * n / (m + n)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return d, p


def reference_prefix(reference_sorted: np.ndarray) -> np.ndarray:
    """``G[i] = integral of F_ref from r[0] to r[i]`` for a sorted reference (fit once, reuse per
    window in :func:`ks_wasserstein_samples`)."""
    n1 = reference_sorted.size
    g = np.zeros(n1)
    if n1 > 1:
        np.cumsum(np.arange(1, n1) / n1 * np.diff(reference_sorted), out=g[1:])
    return g


def ks_wasserstein_samples(reference_sorted: np.ndarray, window: np.ndarray,
                           prefix: np.ndarray | None = None) -> tuple[float, float, float]:
    """KS ``(D, p_value)`` and the (unnormalised) first Wasserstein distance in one pass.

    Work is O(n_window log n_reference), not O(n_reference): between two consecutive window
    values the window CDF is a constant ``c``, so ``|F_ref - c|`` peaks at the interval's ends
    (KS) and its integral splits where ``F_ref`` crosses ``c``, read from the reference's CDF
    integral ``G`` (:func:`reference_prefix`, computed once per reference). ``D`` and ``p`` equal
    :func:`ks_samples` (scipy's ``ks_2samp``); the distance equals
    ``scipy.stats.wasserstein_distance``.

    >>> d, p, w = ks_wasserstein_samples(np.arange(10.0), np.arange(10.0) + 0.5)
    >>> round(d, 2), round(w, 2)
    (0.1, 0.5)
    """
    r = reference_sorted
    win = np.sort(np.asarray(window, dtype=float))
    win = win[~np.isnan(win)]
    n1, n2 = r.size, win.size
    if n1 == 0 or n2 == 0:
        raise ValueError("KS needs non-empty reference and window")
    g = reference_prefix(r) if prefix is None else prefix
    last = np.empty(n2, dtype=bool)
    np.not_equal(win[1:], win[:-1], out=last[:-1])
    last[-1] = True
    u = win[last]  # distinct window values
    f2 = (np.flatnonzero(last) + 1) / n2  # window CDF at each of them
    right = np.searchsorted(r, u, side="right")
    f2_before = np.concatenate(([0.0], f2[:-1]))
    d = float(max(np.abs(right / n1 - f2).max(), np.abs(np.searchsorted(r, u, side="left") / n1 - f2_before).max()))

    def integral(x: np.ndarray, i: np.ndarray) -> np.ndarray:  # G(x), i = searchsorted(r, x, "right")
        j = np.maximum(i - 1, 0)
        return np.where(i > 0, g[j] + i / n1 * (x - r[j]), 0.0)

    gu = integral(u, right)
    a, b, c = u[:-1], u[1:], f2[:-1]
    q = r[np.ceil(c * n1 - 1e-9).astype(np.int64) - 1]  # F_ref >= c from q on
    lo, hi = np.maximum(a, q), np.minimum(b, q)
    above = np.where(lo < b, (gu[1:] - integral(lo, np.searchsorted(r, lo, side="right"))) - c * (b - lo), 0.0)
    below = np.where(a < q, c * (hi - a) - (integral(hi, np.searchsorted(r, hi, side="right")) - gu[:-1]), 0.0)
    top = max(r[-1], u[-1])
    w = float(above.sum() + below.sum() + gu[0] + (top - u[-1]) - (g[-1] + (top - r[-1]) - gu[-1]))
    if max(n1, n2) <= _SCIPY_EXACT_MAX_N:
        res = stats.ks_2samp(r, win)
        return float(res.statistic), float(res.pvalue), w
    m, n = max(n1, n2), min(n1, n2)
    p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
    return d, p, w


def ks_bins(reference: BinCounts, window: BinCounts) -> tuple[float, float, float]:
    """KS statistic on binned numeric data: ``(d_binned, p_value, bound)``.

    The empirical CDFs are compared at the reference edges only, so ``d_binned <= D <=
    d_binned + bound`` where ``bound`` is the largest mass either sample puts in a single bin
    (about ``1 / n_bins`` for quantile bins when the window resembles the reference). The p-value
    uses the asymptotic distribution at ``d_binned`` and is therefore conservative.
    """
    p_ref, p_win = _proportions(reference, window)
    d = float(np.max(np.abs(np.cumsum(p_ref)[:-1] - np.cumsum(p_win)[:-1]), initial=0.0))
    bound = float(max(p_ref.max(), p_win.max()))
    m, n = max(reference.total, window.total), min(reference.total, window.total)
    p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
    return d, p, bound


def chi2_bins(reference: BinCounts, window: BinCounts) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity on the 2 x k table of bin counts.

    Bins empty in both samples are dropped (as scipy's ``chi2_contingency`` would fail on them);
    no Yates correction (k > 2 generally). Assumes independent observations and expected counts
    of about 5 or more per cell; with a huge window any tiny shift is significant, which is why
    the verdict also needs an effect size. Reference: Pearson (1900).

    >>> from detectors.binning import CategoricalBins
    >>> b = CategoricalBins().fit(np.array(list("aabb"), dtype=object))
    >>> chi2_bins(b.summarise(np.array(list("ab"), dtype=object)), b.summarise(np.array(list("ab"), dtype=object)))
    (0.0, 1.0)
    """
    _check_same_edges(reference, window)
    table = np.vstack([reference.counts, window.counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    row = table.sum(axis=1, keepdims=True)
    col = table.sum(axis=0, keepdims=True)
    if row.min() == 0:
        raise ValueError("cannot compare an empty summary (no non-null values)")
    expected = row @ col / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return stat, float(stats.chi2.sf(stat, dof))


def psi_bins(reference: BinCounts, window: BinCounts, eps: float = 1e-4) -> float:
    """Population Stability Index ``sum (w - r) ln(w / r)`` over the bins.

    Proportions are floored at ``eps`` so empty bins do not give infinity. Common reading:
    < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift. Depends on the binning; quantile bins
    of the reference are the usual choice. Reference: Yurdakul (2018), "Statistical properties
    of population stability index".
    """
    p_ref, p_win = _proportions(reference, window)
    r = np.maximum(p_ref, eps)
    w = np.maximum(p_win, eps)
    return float(np.sum((w - r) * np.log(w / r)))


def jensen_shannon_bins(reference: BinCounts, window: BinCounts) -> float:
    """Jensen-Shannon *distance* (square root of the divergence, base 2, in [0, 1]).

    Symmetric and bounded, so one threshold works across features; equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Reference: Lin (1991), IEEE T-IT 37.
    """
    p_ref, p_win = _proportions(reference, window)
    return float(distance.jensenshannon(p_ref, p_win, base=2.0))


def hellinger_bins(reference: BinCounts, window: BinCounts) -> float:
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))`` in [0, 1]. Reference: Hellinger (1909)."""
    p_ref, p_win = _proportions(reference, window)
    bc = float(np.sum(np.sqrt(p_ref * p_win)))
    return float(np.sqrt(max(0.0, 1.0 - bc)))


def wasserstein_samples(reference_sorted: np.ndarray, window: np.ndarray, scale: float) -> float:
    """First Wasserstein distance between the samples divided by ``scale`` (reference std).

    Dividing by the reference standard deviation makes the distance unit-free ("how many
    standard deviations the distribution moved"), the normalisation evidently uses; equals
    ``scipy.stats.wasserstein_distance(ref, win) / scale``. Reference: Villani (2009).
    """
    win = np.asarray(window, dtype=float)
    win = win[~np.isnan(win)]
    if reference_sorted.size == 0 or win.size == 0:
        raise ValueError("Wasserstein needs non-empty reference and window")
    w = float(stats.wasserstein_distance(reference_sorted, win))
    return w / scale if scale > 0 else w


def wasserstein_bins(
    reference: BinCounts, window: BinCounts, low: float, high: float, scale: float
) -> float:
    """Wasserstein distance on binned data, ``integral |F_ref - F_win|`` / ``scale``.

    Within a bin both CDFs are taken as linear (mass spread uniformly), and the outer bins are
    closed at the reference ``low``/``high``: mass the window puts beyond them is treated as
    sitting on those limits, so far moves are under-estimated. The error per bin is at most its
    width times the CDF gap, so the finer the bins the closer to exact.
    """
    p_ref, p_win = _proportions(reference, window)
    grid = np.concatenate([[low], reference.edges.astype(float), [high]])
    widths = np.maximum(np.diff(grid), 0.0)
    gap = np.abs(np.cumsum(p_ref) - np.cumsum(p_win))
    left = np.concatenate([[0.0], gap[:-1]])
    w = float(np.sum(widths * (left + gap) / 2.0))
    return w / scale if scale > 0 else w
