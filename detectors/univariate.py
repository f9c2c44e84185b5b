"""Univariate two-sample drift statistics on samples or on reference-binned counts.

Every function here is a pure computation returning ``(statistic, p_value)`` or a distance;
turning those into a verdict happens in :mod:`detectors.verdict`. Histogram statistics take two
:class:`~detectors.binning.BinCounts` built on the same reference edges and are exact on those
bins; KS and Wasserstein are exact on samples and bounded on bins (see each docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Self

import numpy as np
from scipy import special  # scipy.stats and scipy.spatial are imported where used: ~0.7 s of a
#                            `driftwarden check` process, which on common data never needs them

from detectors._compat import fit_method
from detectors.binning import BinCounts

__all__ = [
    "ks_pvalue",
    "SortedReference",
    "ks_wasserstein_samples",
    "ks_samples",
    "ks_bins",
    "chi2_bins",
    "psi_bins",
    "jensen_shannon_bins",
    "histogram_distances",
    "hellinger_bins",
    "wasserstein_samples",
    "wasserstein_bins",
]

_SCIPY_EXACT_MAX_N = 10_000  # scipy's ks_2samp(mode="auto") switches to the asymptotic p here

try:  # one linear merge in C (detectors/_ecdf.c); the numpy formulation below when not built
    from detectors._ecdf import ks_w1 as _merge_ks_w1
except ImportError:
    _merge_ks_w1 = None
# The merge walks both arrays: O(n_ref + n_win). Past this ratio the numpy formulation,
# O(n_win log n_ref), is cheaper (a 3M-value reference against 10k-value windows).
_MERGE_MAX_RATIO = 64


def ks_pvalue(d: float, n: int | float) -> float:
    """``P(D_n >= d)`` for the two-sided one-sample KS statistic: ``scipy.stats.kstwo.sf(d, n)``
    (the distribution ``ks_2samp`` uses past 10,000 values, with ``n = round(m n / (m + n))``).

    scipy's distribution object costs ~0.35 ms a call and its Durbin-matrix branch up to 7 ms,
    a large share of a window's drift check, so for ``n > 140`` and ``1/n < d < 0.5`` the two
    series scipy itself uses there (Simard & L'Ecuyer 2011) are evaluated here, vectorised:

    * ``n d^2 >= 2.2``: ``2 smirnov(n, d)`` (:func:`_smirnov_sf`), as scipy;
    * otherwise the Pelz-Good expansion (:func:`_pelz_good_cdf`), as scipy when
      ``n d^1.5 > 1.4`` or ``n > 100,000``; below that scipy runs the Durbin matrix, which
      here is used only for ``n < 1,000``: for larger ``n`` Pelz-Good is within 1e-7 of it
      (``p >= 0.997`` there), and scipy 1.17's Durbin matrix overflows for large ``n`` and can
      return 0.0 for a tiny ``d`` (``kstwo.sf(2.6e-4, 90000)``), calling identical data drifted.

    >>> from scipy import stats
    >>> abs(ks_pvalue(0.05, 5000) - float(stats.kstwo.sf(0.05, 5000))) < 1e-12
    True
    >>> ks_pvalue(2.6e-4, 90000) > 0.999
    True
    """
    x = float(d)
    if n > 140 and 1.0 / n < x < 0.5:
        nxx = n * x * x
        if nxx >= 370.0:
            return 0.0
        if nxx >= 2.2:
            return min(1.0, 2.0 * _smirnov_sf(int(n), x))
        if n >= 1000 or n * x**1.5 > 1.4:
            return min(1.0, max(0.0, 1.0 - _pelz_good_cdf(n, x)))
    from scipy import stats  # the Durbin-matrix branch only

    return float(np.clip(stats.kstwo.sf(x, n), 0.0, 1.0))


_SQRT_2PI = math.sqrt(2.0 * math.pi)
_PI2 = math.pi**2


def _pelz_good_cdf(n: float, x: float) -> float:
    """``P(D_n <= x)`` by the Pelz-Good (1976) expansion ``K0 + K1/sqrt(n) + K2/n + K3/n^1.5``
    in ``z = x sqrt(n)``, each ``K`` a theta-function series in ``exp(-pi^2 (2k-1)^2 / (8 z^2))``
    (plus two series in ``exp(-pi^2 k^2 / (2 z^2))``). Accurate to ~1e-8 for ``n >= 1,000``.
    Reference: Pelz & Good (1976), JRSS B 38; Simard & L'Ecuyer (2011), J. Stat. Softw. 39.
    """
    z = x * math.sqrt(n)
    z2 = z * z
    if _PI2 / (8.0 * z2) > 700.0:  # every term underflows: the CDF is 0
        return 0.0
    # A handful of terms (kmax = ceil(16 z / pi)): plain floats beat numpy's per-call overhead.
    z4, z6 = z2 * z2, z2 * z2 * z2
    s0 = s1 = s2 = s3 = t2 = t3 = 0.0
    a1, b2, c2 = _PI2 / 4.0, (2.0 * z4 - 5.0 * z2) * _PI2 / 4.0, _PI2**2 * (1.0 - 2.0 * z2) / 16.0
    b3, c3, d3 = _PI2 * (135.0 * z4 - 96.0 * z6) / 4.0, _PI2**2 * (212.0 * z4 - 60.0 * z2) / 16.0, _PI2**3 * (5.0 - 30.0 * z2) / 64.0
    e0 = 6.0 * z6 + 2.0 * z4
    e3 = -30.0 * z6 - 90.0 * z6 * z2
    for k in range(1, math.ceil(16.0 * z / math.pi) + 1):
        m2 = (2.0 * k - 1.0) ** 2  # (2k - 1)^2
        e = math.exp(-_PI2 * m2 / (8.0 * z2))
        s0 += e
        s1 += (a1 * m2 - z2) * e
        s2 += (e0 + b2 * m2 + c2 * m2 * m2) * e
        s3 += (e3 + b3 * m2 + c3 * m2 * m2 + d3 * m2 * m2 * m2) * e
        kk = float(k * k)
        f = math.exp(-_PI2 * kk / (2.0 * z2))
        t2 += kk * f
        t3 += (3.0 * z2 - _PI2 * kk) * kk * f
    k0 = s0 / z
    k1 = s1 / (6.0 * z4)
    k2 = s2 / (72.0 * z**7) - _PI2 * t2 / (36.0 * z**3)
    k3 = s3 / (6480.0 * z**10) + _PI2 * t3 / (216.0 * z6)
    root = math.sqrt(n)
    return float(_SQRT_2PI * (k0 + k1 / root + k2 / n + k3 / (n * root)))


def _smirnov_sf(n: int, d: float) -> float:
    """One-sided ``P(D_n^+ >= d)`` by the Smirnov-Birnbaum-Tingey sum
    ``d sum_j C(n, j) (d + j/n)^(j-1) (1 - d - j/n)^(n-j)``, j = 0..floor(n (1 - d)).

    Every term is positive, so summing them in log space (``log C`` via ``betaln``) is stable;
    equals ``scipy.special.smirnov(n, d)`` within 1e-10 relative for n up to 1e5 (tested).
    Reference: Birnbaum & Tingey (1951), Ann. Math. Statist. 22.
    """
    j = np.arange(int(math.floor(n * (1.0 - d))) + 1, dtype=float)
    a = d + j / n
    with np.errstate(divide="ignore", invalid="ignore"):
        log_terms = (-math.log(n + 1.0) - special.betaln(n - j + 1.0, j + 1.0)
                     + (j - 1.0) * np.log(a) + (n - j) * np.log1p(-a))
    log_terms[np.isnan(log_terms)] = -np.inf  # 0 * log(0) at j = n (1 - d)
    top = float(log_terms.max())
    return d * math.exp(top) * float(np.exp(log_terms - top).sum())


def _check_same_edges(a: BinCounts, b: BinCounts) -> None:
    if a.edges is b.edges:  # summaries of one binner share its edges: skip the element compare
        return
    if a.edges.shape != b.edges.shape or not np.array_equal(a.edges, b.edges):
        raise ValueError("both summaries must be built on the same reference edges")


def _proportions(a: BinCounts, b: BinCounts) -> tuple[np.ndarray, np.ndarray]:
    _check_same_edges(a, b)
    if a.total == 0 or b.total == 0:
        raise ValueError("cannot compare an empty summary (no non-null values)")
    return a.counts / a.total, b.counts / b.total


def _sorted_non_null(values: np.ndarray) -> np.ndarray:
    win = np.sort(np.asarray(values, dtype=float))
    if win.size and np.isnan(win[-1]):  # the sort puts NaNs last
        win = win[: int(np.searchsorted(np.isnan(win), True))]
    return win


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
    from scipy import stats

    win = _sorted_non_null(window)
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
    p = ks_pvalue(d, np.round(en))
    return d, p


def reference_prefix(reference_sorted: np.ndarray) -> np.ndarray:
    """``G[i] = integral of F_ref from r[0] to r[i]`` for a sorted reference."""
    n1 = reference_sorted.size
    g = np.zeros(n1)
    if n1 > 1:
        np.cumsum(np.arange(1, n1) / n1 * np.diff(reference_sorted), out=g[1:])
    return g


def _empty() -> np.ndarray:
    return np.empty(0)


@dataclass(slots=True, eq=False)
class SortedReference:
    """A numeric reference column prepared once for exact KS/Wasserstein on many windows.

    ``values`` sorted and NaN-free; ``prefix`` the integral of its CDF
    (:func:`reference_prefix`); ``first[i]`` / ``end[i]`` where the run of values equal to
    ``values[i]`` starts and ends (one past), so a window needs one binary search per distinct
    value instead of four. Costs four arrays of the reference's length (indices as int32 where
    they fit). ``SortedReference().fit(reference)`` prepares a raw column; :meth:`from_sorted`
    one that is already sorted and NaN-free.

    >>> ref = SortedReference().fit(np.array([3.0, np.nan, 1.0, 1.0]))
    >>> ref.values.tolist(), ref.first.tolist(), ref.end.tolist()
    ([1.0, 1.0, 3.0], [0, 0, 2], [2, 2, 3])
    """

    values: np.ndarray = field(default_factory=_empty)
    prefix: np.ndarray = field(default_factory=_empty)
    first: np.ndarray = field(default_factory=_empty)
    end: np.ndarray = field(default_factory=_empty)

    @classmethod
    def from_sorted(cls, reference_sorted: np.ndarray) -> SortedReference:
        r = np.asarray(reference_sorted, dtype=float)
        idx = np.int32 if r.size < 2**31 - 1 else np.int64
        return cls(r, reference_prefix(r), np.searchsorted(r, r, side="left").astype(idx),
                   np.searchsorted(r, r, side="right").astype(idx))

    @fit_method(lambda cls, reference: cls().fit(reference))
    def fit(self, reference: np.ndarray) -> Self:
        """Sort ``reference`` (NaN dropped) and prepare its lookups; returns ``self``."""
        r = np.asarray(reference, dtype=float)
        prepared = SortedReference.from_sorted(np.sort(r[~np.isnan(r)]))
        self.values, self.prefix, self.first, self.end = (prepared.values, prepared.prefix, prepared.first,
                                                          prepared.end)
        return self


def ks_wasserstein_samples(reference: SortedReference | np.ndarray,
                           window: np.ndarray, merge: bool = True) -> tuple[float, float, float]:
    """KS ``(D, p_value)`` and the (unnormalised) first Wasserstein distance in one pass.

    ``reference`` is a :class:`SortedReference` (build it once per reference) or an array
    (sorted and cleaned of NaN here). Two exact routes give the same numbers:

    * a linear merge of both empirical CDFs in C (``detectors/_ecdf.c``), O(n_reference +
      n_window), used when it is built, ``merge`` is True and the reference is at most 64 times
      the window;
    * otherwise O(n_window log n_reference) in numpy: between two consecutive window values the
      window CDF is a constant ``c``, so ``|F_ref - c|`` peaks at the interval's ends (KS) and its
      integral splits where ``F_ref`` crosses ``c``, read from the reference's CDF integral.

    ``D`` and ``p`` equal :func:`ks_samples` (scipy's ``ks_2samp``); the distance equals
    ``scipy.stats.wasserstein_distance``.

    >>> d, p, w = ks_wasserstein_samples(np.arange(10.0), np.arange(10.0) + 0.5)
    >>> round(d, 2), round(w, 2)
    (0.1, 0.5)
    """
    # A raw array is sorted and cleaned here (cheap when it already is): a NaN in it would make
    # both exact routes wrong, and the C merge refuses it.
    r = reference.values if isinstance(reference, SortedReference) else _sorted_non_null(reference)
    r = np.ascontiguousarray(r)
    win = _sorted_non_null(window)
    n1, n2 = r.size, win.size
    if n1 == 0 or n2 == 0:
        raise ValueError("KS needs non-empty reference and window")
    if merge and _merge_ks_w1 is not None and n1 <= _MERGE_MAX_RATIO * n2:
        d, w = _merge_ks_w1(r, win)
    else:
        ref = reference if isinstance(reference, SortedReference) else SortedReference.from_sorted(r)
        d, w = _ks_w1_search(ref, win)
    if max(n1, n2) <= _SCIPY_EXACT_MAX_N:
        from scipy import stats

        res = stats.ks_2samp(r, win)
        return float(res.statistic), float(res.pvalue), w
    m, n = max(n1, n2), min(n1, n2)
    return d, ks_pvalue(d, np.round(m * n / (m + n))), w


def _ks_w1_search(ref: SortedReference, win: np.ndarray) -> tuple[float, float]:
    """KS ``D`` and W1 of a sorted, NaN-free window: one binary search per distinct window
    value (see :func:`ks_wasserstein_samples`)."""
    r, g = ref.values, ref.prefix
    n1, n2 = r.size, win.size
    last = np.empty(n2, dtype=bool)
    np.not_equal(win[1:], win[:-1], out=last[:-1])
    last[-1] = True
    u = win[last]  # distinct window values
    f2 = (np.flatnonzero(last) + 1) / n2  # window CDF at each of them
    right = np.searchsorted(r, u, side="right")
    prev = np.maximum(right - 1, 0)
    # searchsorted(r, u, "left"): the start of u's run in r where u occurs there, else `right`
    left = np.where((right > 0) & (r[prev] == u), ref.first[prev], right)
    f2_before = np.concatenate(([0.0], f2[:-1]))
    d = float(max(np.abs(right / n1 - f2).max(), np.abs(left / n1 - f2_before).max()))

    def integral(x: np.ndarray, i: np.ndarray) -> np.ndarray:  # G(x), i = searchsorted(r, x, "right")
        j = np.maximum(i - 1, 0)
        return np.where(i > 0, g[j] + i / n1 * (x - r[j]), 0.0)

    gu = integral(u, right)
    a, b, c = u[:-1], u[1:], f2[:-1]
    k = np.ceil(c * n1 - 1e-9).astype(np.int64) - 1
    q, q_end = r[k], ref.end[k]  # F_ref >= c from q on; q_end = searchsorted(r, q, "right")
    hi = np.minimum(b, q)
    # |F - c| = (F - c) + 2 (c - F)+, and (c - F)+ lives left of q only: the signed part sums to
    # G(u_last) - G(u_0) - sum c (b - a), leaving one clipped integral per interval.
    below = np.where(a < q, c * (hi - a) - (integral(hi, np.where(b <= q, right[1:], q_end)) - gu[:-1]), 0.0)
    inner = (gu[-1] - gu[0]) - float(np.dot(c, b - a)) + 2.0 * float(below.sum())
    top = max(r[-1], u[-1])
    w1 = max(0.0, float(inner + gu[0] + (top - u[-1]) - (g[-1] + (top - r[-1]) - gu[-1])))
    # The signed integral subtracts terms as large as the data's span: where the distance is
    # tiny against that span (values out to +-1e300 around a small shift) the difference has
    # lost its digits, so sum the positive gaps of the merged CDFs instead (as scipy does).
    if w1 <= 1e-9 * (top - min(r[0], u[0])):
        w1 = _w1_merged(r, win)
    return d, w1


def _w1_merged(r: np.ndarray, win: np.ndarray) -> float:
    """W1 of two sorted samples as ``sum |F_ref - F_win| dx`` over the pooled values: only
    non-negative terms, so no cancellation; O((n_ref + n_win) log)."""
    pooled = np.concatenate([r, win])
    pooled.sort(kind="mergesort")
    gaps = np.diff(pooled)
    at = pooled[:-1]
    diff = np.searchsorted(r, at, side="right") / r.size - np.searchsorted(win, at, side="right") / win.size
    return float(np.dot(np.abs(diff), gaps))


def ks_bins(reference: BinCounts, window: BinCounts) -> tuple[float, float, float]:
    """KS statistic on binned numeric data: ``(d_binned, p_value, bound)``.

    The empirical CDFs are compared at the reference edges only, so ``d_binned <= D <=
    d_binned + bound`` where ``bound`` is the largest mass either sample puts in a single bin
    (about ``1 / n_bins`` for quantile bins when the window resembles the reference). The p-value
    uses the asymptotic distribution at ``d_binned`` and is therefore conservative.

    >>> from detectors.binning import NumericBins
    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
    >>> d, p, bound = ks_bins(b.summarise(np.arange(100.0)), b.summarise(np.arange(50.0, 150.0)))
    >>> d, p < 1e-9, bound
    (0.5, True, 0.75)
    """
    p_ref, p_win = _proportions(reference, window)
    d = float(np.max(np.abs(np.cumsum(p_ref)[:-1] - np.cumsum(p_win)[:-1]), initial=0.0))
    bound = float(max(p_ref.max(), p_win.max()))
    m, n = max(reference.total, window.total), min(reference.total, window.total)
    p = ks_pvalue(d, np.round(m * n / (m + n)))
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
    return stat, float(special.chdtrc(dof, stat))  # = stats.chi2.sf, without its ~0.3 ms overhead


def psi_bins(reference: BinCounts, window: BinCounts, eps: float = 1e-4) -> float:
    """Population Stability Index ``sum (w - r) ln(w / r)`` over the bins.

    Proportions are floored at ``eps`` so empty bins do not give infinity. Common reading:
    < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift. Depends on the binning; quantile bins
    of the reference are the usual choice. Reference: Yurdakul (2018), "Statistical properties
    of population stability index".

    >>> from detectors.binning import NumericBins
    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
    >>> round(psi_bins(b.summarise(np.arange(100.0)), b.summarise(np.arange(50.0, 150.0))), 2)
    4.46
    """
    p_ref, p_win = _proportions(reference, window)
    return _psi(p_ref, p_win, eps)


def histogram_distances(reference: BinCounts, window: BinCounts, eps: float = 1e-4) -> tuple[float, float, float]:
    """``(jensen_shannon, psi, hellinger)`` of two summaries from one pass over the proportions:
    the same values as :func:`jensen_shannon_bins`, :func:`psi_bins` and :func:`hellinger_bins`."""
    p_ref, p_win = _proportions(reference, window)
    return _js(p_ref, p_win), _psi(p_ref, p_win, eps), _hellinger(p_ref, p_win)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2.0
    div = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0
    return float(np.sqrt(max(0.0, div) / math.log(2.0)))  # as scipy's jensenshannon(base=2)


def _psi(p_ref: np.ndarray, p_win: np.ndarray, eps: float) -> float:
    r = np.maximum(p_ref, eps)
    w = np.maximum(p_win, eps)
    return float(np.sum((w - r) * np.log(w / r)))


def _hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q))))))


def jensen_shannon_bins(reference: BinCounts, window: BinCounts) -> float:
    """Jensen-Shannon *distance* (square root of the divergence, base 2, in [0, 1]).

    Symmetric and bounded, so one threshold works across features; equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Reference: Lin (1991), IEEE T-IT 37.

    >>> from detectors.binning import NumericBins
    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
    >>> round(jensen_shannon_bins(b.summarise(np.arange(100.0)), b.summarise(np.arange(50.0, 150.0))), 3)
    0.587
    """
    from scipy.spatial import distance

    p_ref, p_win = _proportions(reference, window)
    return float(distance.jensenshannon(p_ref, p_win, base=2.0))


def hellinger_bins(reference: BinCounts, window: BinCounts) -> float:
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))`` in [0, 1]. Reference: Hellinger (1909).

    >>> from detectors.binning import NumericBins
    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
    >>> round(hellinger_bins(b.summarise(np.arange(100.0)), b.summarise(np.arange(50.0, 150.0))), 3)
    0.563
    """
    p_ref, p_win = _proportions(reference, window)
    return _hellinger(p_ref, p_win)


def wasserstein_samples(reference_sorted: np.ndarray, window: np.ndarray, scale: float) -> float:
    """First Wasserstein distance between the samples divided by ``scale`` (reference std).

    Dividing by the reference standard deviation makes the distance unit-free ("how many
    standard deviations the distribution moved"), the normalisation evidently uses; equals
    ``scipy.stats.wasserstein_distance(ref, win) / scale``. Reference: Villani (2009).

    >>> wasserstein_samples(np.arange(10.0), np.arange(10.0) + 2.0, scale=2.0)
    1.0
    """
    from scipy import stats

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

    >>> from detectors.binning import NumericBins
    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
    >>> wasserstein_bins(b.summarise(np.arange(100.0)), b.summarise(np.arange(50.0, 150.0)), 0.0, 99.0, 1.0)
    30.9375

    (exactly 50 on the samples: half the window lies beyond the reference's maximum, taken as on it).
    """
    p_ref, p_win = _proportions(reference, window)
    grid = np.concatenate([[low], reference.edges.astype(float), [high]])
    widths = np.maximum(np.diff(grid), 0.0)
    gap = np.abs(np.cumsum(p_ref) - np.cumsum(p_win))
    left = np.concatenate([[0.0], gap[:-1]])
    w = float(np.sum(widths * (left + gap) / 2.0))
    return w / scale if scale > 0 else w
