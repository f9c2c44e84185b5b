"""Univariate drift statistics against scipy (and evidently where it runs the same test).

Tolerances: statistics computed by the same algorithm as scipy must agree to ``rtol=1e-12``;
where the computation path differs (own pooled-CDF KS in the asymptotic regime, own
Wasserstein, BH) ``rtol=1e-9`` absorbs summation order only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special, stats
from scipy.spatial import distance

from detectors.binning import BinCounts, CategoricalBins, NumericBins
from detectors.univariate import (
    chi2_bins,
    hellinger_bins,
    jensen_shannon_bins,
    ks_bins,
    ks_pvalue,
    ks_samples,
    ks_wasserstein_samples,
    psi_bins,
    wasserstein_bins,
    wasserstein_samples,
)

RNG = np.random.default_rng(20260101)

# (n_ref, n_win, shift, ties): exact regime (max n <= 10,000) and asymptotic regime.
KS_CASES = [
    pytest.param(2_000, 500, 0.0, False, id="exact-same"),
    pytest.param(3_000, 800, 0.2, False, id="exact-shift"),
    pytest.param(10_000, 10_000, 0.05, False, id="exact-boundary"),
    pytest.param(4_000, 1_000, 0.1, True, id="exact-ties"),
    pytest.param(50_000, 5_000, 0.0, False, id="asymp-same"),
    pytest.param(50_000, 20_000, 0.03, False, id="asymp-shift"),
    pytest.param(30_000, 12_000, 0.05, True, id="asymp-ties"),
]


def _assert_ks_p(p: float, expected: float) -> None:
    """scipy's p, except where :func:`ks_pvalue` replaces the Durbin matrix (p >= 0.997)."""
    if expected >= 0.997:
        assert p == pytest.approx(expected, abs=1e-7)
    else:
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-300)


def _pair(n_ref: int, n_win: int, shift: float, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n_ref + n_win)
    ref = rng.normal(size=n_ref)
    win = rng.normal(shift, 1.0, size=n_win)
    if ties:
        ref, win = np.round(ref * 4), np.round(win * 4)
    return ref, win


@pytest.mark.parametrize(("n_ref", "n_win", "shift", "ties"), KS_CASES)
def test_ks_samples_matches_scipy(n_ref: int, n_win: int, shift: float, ties: bool) -> None:
    ref, win = _pair(n_ref, n_win, shift, ties)
    expected = stats.ks_2samp(ref, win)
    d, p = ks_samples(np.sort(ref), win)
    assert d == pytest.approx(expected.statistic, rel=1e-12, abs=1e-15)
    _assert_ks_p(p, expected.pvalue)


def test_merge_kernel_is_built() -> None:
    # the C merge is part of the product: a missing build is a failure here, not a silent fallback
    import detectors._ecdf  # noqa: F401
    import detectors.univariate as uni

    assert uni._merge_ks_w1 is not None


ROUTES = pytest.mark.parametrize("merge", [True, False], ids=["c-merge", "numpy-search"])


@ROUTES
@pytest.mark.parametrize(("n_ref", "n_win", "shift", "ties"), KS_CASES)
def test_ks_wasserstein_samples_matches_scipy(n_ref: int, n_win: int, shift: float, ties: bool, merge: bool) -> None:
    ref, win = _pair(n_ref, n_win, shift, ties)
    expected = stats.ks_2samp(ref, win)
    d, p, w = ks_wasserstein_samples(np.sort(ref), win, merge=merge)
    assert d == pytest.approx(expected.statistic, rel=1e-12, abs=1e-15)
    _assert_ks_p(p, expected.pvalue)
    assert w == pytest.approx(stats.wasserstein_distance(ref, win), rel=1e-9)
    assert (d, p) == ks_samples(np.sort(ref), win)


@pytest.mark.parametrize("n", [141, 500, 999, 1_000, 4_660, 10_000, 45_000, 100_000, 250_000])
def test_ks_pvalue_matches_scipy_kstwo(n: int) -> None:
    # a grid over every branch: tiny d (Durbin matrix in scipy), Pelz-Good, Smirnov, tails
    for d in np.concatenate([np.geomspace(0.3 / n, 0.2, 200), [0.5, 0.7, 1.0, 1.5]]):
        expected = float(np.clip(stats.kstwo.sf(d, n), 0.0, 1.0))
        got = ks_pvalue(d, n)
        if 1_000 <= n <= 100_000 and 1 / n < d and n * d**1.5 <= 1.4:
            # scipy's Durbin matrix; Pelz-Good here (p >= 0.997 in this region)
            assert expected >= 0.997 and got == pytest.approx(expected, abs=1e-7), d
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-300), d


@pytest.mark.parametrize("n", [141, 1_000, 4_660, 45_000, 100_000])
def test_smirnov_sum_matches_scipy_special(n: int) -> None:
    from detectors.univariate import _smirnov_sf

    for t in np.geomspace(0.05, 300, 40):
        d = float(np.sqrt(t / n))
        if 1 / n < d < 0.5:
            assert _smirnov_sf(n, d) == pytest.approx(float(special.smirnov(n, d)), rel=1e-9), d


def test_ks_pvalue_near_one_where_scipy_durbin_matrix_overflows() -> None:
    # scipy 1.17: kstwo.sf(2.6e-4, 90000) overflows in its Durbin matrix and can return 0.0;
    # the Kolmogorov limit with Stephens' correction (within ~1e-9 this far out) gives ~1.
    n, d = 90_000, 2.6e-4
    stephens = float(special.kolmogorov((np.sqrt(n) + 0.12 + 0.11 / np.sqrt(n)) * d))
    assert ks_pvalue(d, n) == pytest.approx(stephens, abs=1e-9)
    assert ks_pvalue(d, n) > 0.999


def test_ks_samples_ignores_nan_in_window() -> None:
    ref, win = _pair(2_000, 300, 0.1, False)
    with_nan = np.concatenate([win, [np.nan] * 7])
    assert ks_samples(np.sort(ref), with_nan) == ks_samples(np.sort(ref), win)


def test_wasserstein_samples_matches_scipy() -> None:
    ref, win = _pair(5_000, 2_000, 0.3, False)
    scale = float(ref.std())
    assert wasserstein_samples(np.sort(ref), win, scale) == pytest.approx(
        stats.wasserstein_distance(ref, win) / scale, rel=1e-12
    )


def _num_bins(ref: np.ndarray, win: np.ndarray, n_bins: int = 20) -> tuple[BinCounts, BinCounts]:
    b = NumericBins(n_bins).fit(ref)
    return b.summarise(ref), b.summarise(win)


def _cat_bins(ref: np.ndarray, win: np.ndarray) -> tuple[BinCounts, BinCounts]:
    b = CategoricalBins().fit(ref)
    return b.summarise(ref), b.summarise(win)


def _cat_pair(shift: float, n_ref: int = 4_000, n_win: int = 1_500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(int(shift * 1000) + 7)
    cats = np.array(list("abcdef"), dtype=object)
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.07, 0.03])
    q = (1 - shift) * p + shift * p[::-1]
    return rng.choice(cats, n_ref, p=p), rng.choice(cats, n_win, p=q)


HIST_CASES = [
    pytest.param("num", 0.0, id="num-same"),
    pytest.param("num", 0.4, id="num-shift"),
    pytest.param("cat", 0.0, id="cat-same"),
    pytest.param("cat", 0.3, id="cat-shift"),
]


def _hist_case(kind: str, shift: float) -> tuple[BinCounts, BinCounts]:
    if kind == "num":
        return _num_bins(*_pair(6_000, 2_000, shift, False))
    return _cat_bins(*_cat_pair(shift))


@pytest.mark.parametrize(("kind", "shift"), HIST_CASES)
def test_chi2_bins_matches_chi2_contingency(kind: str, shift: float) -> None:
    ref, win = _hist_case(kind, shift)
    table = np.vstack([ref.counts, win.counts])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    stat, p = chi2_bins(ref, win)
    assert stat == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    _assert_ks_p(p, expected.pvalue)


def test_chi2_bins_two_categories_has_no_yates_correction() -> None:
    ref = BinCounts(np.array(["a"], dtype=object), np.array([600, 400]))
    win = BinCounts(ref.edges, np.array([45, 55]))
    expected = stats.chi2_contingency(np.vstack([ref.counts, win.counts]), correction=False)
    assert chi2_bins(ref, win) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)


def test_chi2_bins_drops_bins_empty_in_both() -> None:
    ref = BinCounts(np.arange(3.0), np.array([10, 0, 20, 30]))
    win = BinCounts(ref.edges, np.array([5, 0, 12, 9]))
    expected = stats.chi2_contingency(np.array([[10, 20, 30], [5, 12, 9]]), correction=False)
    assert chi2_bins(ref, win) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)


@pytest.mark.parametrize(("kind", "shift"), HIST_CASES)
def test_histogram_distances_match_direct_formulas(kind: str, shift: float) -> None:
    ref, win = _hist_case(kind, shift)
    p, q = ref.counts / ref.total, win.counts / win.total
    assert jensen_shannon_bins(ref, win) == pytest.approx(distance.jensenshannon(p, q, base=2), rel=1e-12, abs=1e-12)
    r, w = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert psi_bins(ref, win) == pytest.approx(np.sum((w - r) * np.log(w / r)), rel=1e-12, abs=1e-15)
    # Hellinger via the L2 form, independent of the Bhattacharyya form used in the code.
    assert hellinger_bins(ref, win) == pytest.approx(
        np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / np.sqrt(2), rel=1e-6, abs=1e-7
    )


def test_psi_floors_empty_bins_at_eps() -> None:
    ref = BinCounts(np.arange(2.0), np.array([50, 50, 0]))
    win = BinCounts(ref.edges, np.array([0, 50, 50]))
    r, w = np.array([0.5, 0.5, 1e-3]), np.array([1e-3, 0.5, 0.5])
    assert psi_bins(ref, win, eps=1e-3) == pytest.approx(np.sum((w - r) * np.log(w / r)), rel=1e-12)
    assert np.isfinite(psi_bins(ref, win))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(5, 400), elements=st.floats(-1e3, 1e3, allow_nan=False)),
    hnp.arrays(np.float64, st.integers(1, 400), elements=st.floats(-1e3, 1e3, allow_nan=False)),
    st.integers(2, 30),
)
def test_ks_bins_bounds_exact_ks(ref: np.ndarray, win: np.ndarray, n_bins: int) -> None:
    rb, wb = _num_bins(ref, win, n_bins)
    d_binned, p, bound = ks_bins(rb, wb)
    d_exact = stats.ks_2samp(ref, win).statistic
    assert d_binned <= d_exact + 1e-12
    assert d_exact <= d_binned + bound + 1e-12
    assert 0.0 <= p <= 1.0


def test_ks_bins_close_to_exact_on_fine_bins() -> None:
    ref, win = _pair(50_000, 20_000, 0.1, False)
    rb, wb = _num_bins(ref, win, 200)
    d_binned, p, bound = ks_bins(rb, wb)
    assert bound < 0.01
    assert d_binned == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=bound)


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5])
def test_wasserstein_bins_close_to_exact_on_fine_bins(shift: float) -> None:
    ref, win = _pair(100_000, 20_000, shift, False)
    rb, wb = _num_bins(ref, win, 1_000)
    scale = float(ref.std())
    exact = stats.wasserstein_distance(ref, win) / scale
    approx = wasserstein_bins(rb, wb, float(ref.min()), float(ref.max()), scale)
    assert approx == pytest.approx(exact, abs=0.01)


def test_wasserstein_bins_coarse_bins_stay_near_exact() -> None:
    ref, win = _pair(20_000, 5_000, 0.5, False)
    rb, wb = _num_bins(ref, win, 20)
    scale = float(ref.std())
    exact = stats.wasserstein_distance(ref, win) / scale
    assert wasserstein_bins(rb, wb, float(ref.min()), float(ref.max()), scale) == pytest.approx(exact, rel=0.15)  # linear CDF in wide tail bins over-estimates (~10% here)


# ---------------------------------------------------------------- properties

counts = hnp.arrays(np.int64, st.integers(2, 12), elements=st.integers(0, 1_000)).filter(lambda c: c.sum() > 0)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_js_and_hellinger_symmetric_bounded_and_zero_on_identical(data: st.DataObject) -> None:
    a = data.draw(counts)
    b = data.draw(hnp.arrays(np.int64, a.size, elements=st.integers(0, 1_000)).filter(lambda c: c.sum() > 0))
    edges = np.arange(a.size - 1, dtype=float)
    x, y = BinCounts(edges, a), BinCounts(edges, b)
    for f in (jensen_shannon_bins, hellinger_bins):
        assert f(x, y) == pytest.approx(f(y, x), abs=1e-12)
        assert -1e-12 <= f(x, y) <= 1.0 + 1e-12
        assert f(x, x) == pytest.approx(0.0, abs=1e-7)
        assert f(x, BinCounts(edges, a * 3)) == pytest.approx(0.0, abs=1e-7)
    assert psi_bins(x, x) == 0.0
    assert chi2_bins(x, BinCounts(edges, a * 2)) == pytest.approx((0.0, 1.0), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-50, 50)),
    hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-50, 50)),
)
def test_ks_is_invariant_to_monotone_transforms(ref: np.ndarray, win: np.ndarray) -> None:
    base = ks_samples(np.sort(ref.astype(float)), win.astype(float))
    for f in (lambda v: 3.0 * v + 7.0, lambda v: np.exp(v / 10.0), lambda v: v**3):
        r, w = f(ref.astype(float)), f(win.astype(float))
        assert ks_samples(np.sort(r), w) == pytest.approx(base, rel=1e-12, abs=1e-15)


def test_ks_zero_on_identical_data() -> None:
    ref, _ = _pair(20_000, 1, 0.0, False)
    assert ks_samples(np.sort(ref), ref)[0] == 0.0
    assert ks_samples(np.sort(ref), ref)[1] == pytest.approx(1.0)


def test_bad_inputs_raise_value_error() -> None:
    a = BinCounts(np.arange(2.0), np.array([1, 2, 3]))
    other_edges = BinCounts(np.arange(2.0) + 0.5, np.array([1, 2, 3]))
    empty = BinCounts(a.edges, np.zeros(3, dtype=np.int64))
    for f in (chi2_bins, psi_bins, jensen_shannon_bins, hellinger_bins, ks_bins):
        with pytest.raises(ValueError):
            f(a, other_edges)
    for f in (psi_bins, jensen_shannon_bins, hellinger_bins, ks_bins):
        with pytest.raises(ValueError):
            f(a, empty)
    with pytest.raises(ValueError):
        chi2_bins(a, empty)
    with pytest.raises(ValueError):
        ks_samples(np.empty(0), np.ones(3))
    with pytest.raises(ValueError):
        ks_wasserstein_samples(np.ones(3), np.array([np.nan]))
    with pytest.raises(ValueError):
        wasserstein_samples(np.ones(3), np.empty(0), 1.0)


# ---------------------------------------------------------------- evidently, same arrays

import evidently.legacy.calculations.stattests as ev  # noqa: E402  (a test dependency: no skip)
from evidently.legacy.core import ColumnType  # noqa: E402


@pytest.mark.parametrize(("n_ref", "n_win", "shift", "ties"), [KS_CASES[1], KS_CASES[5]])
def test_ks_matches_evidently(n_ref: int, n_win: int, shift: float, ties: bool) -> None:
    ref, win = _pair(n_ref, n_win, shift, ties)
    res = ev.ks_stat_test(pd.Series(ref), pd.Series(win), ColumnType.Numerical, 0.05)
    _, p = ks_samples(np.sort(ref), win)
    assert p == pytest.approx(res.drift_score, rel=1e-9, abs=1e-300)
    assert (p <= 0.05) == res.drifted


def test_wasserstein_matches_evidently() -> None:
    ref, win = _pair(8_000, 3_000, 0.25, False)
    res = ev.wasserstein_stat_test(pd.Series(ref), pd.Series(win), ColumnType.Numerical, 0.1)
    # evidently normalises by max(std(ref), 0.001) with ddof=0, as FeatureDrift does.
    ours = wasserstein_samples(np.sort(ref), win, float(np.std(ref)))
    assert ours == pytest.approx(res.drift_score, rel=1e-9)
    assert ks_wasserstein_samples(np.sort(ref), win)[2] / np.std(ref) == pytest.approx(res.drift_score, rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_js_and_psi_match_evidently_on_identical_categorical_bins(shift: float) -> None:
    # On categorical data evidently bins by category, like CategoricalBins, so the bins are the
    # same. (On numeric data with > 20 distinct values it uses Sturges-width histograms of the
    # pooled data, a different binning from our reference quantiles: not comparable.)
    ref, win = _cat_pair(shift)
    rb, wb = _cat_bins(ref, win)
    # evidently fills empty bins differently from our eps floor: keep every category non-empty
    # (the "other" bucket is empty on both sides, which adds exactly 0 to JS and PSI).
    assert (wb.counts[:-1] > 0).all() and rb.counts[-1] == wb.counts[-1] == 0
    js = ev.jensenshannon_stat_test(pd.Series(ref), pd.Series(win), ColumnType.Categorical, 0.1)
    # evidently calls jensenshannon with base=None (natural log): distance_e = distance_2 * sqrt(ln 2).
    assert jensen_shannon_bins(rb, wb) * np.sqrt(np.log(2.0)) == pytest.approx(js.drift_score, rel=1e-9, abs=1e-12)
    psi = ev.psi_stat_test(pd.Series(ref), pd.Series(win), ColumnType.Categorical, 0.1)
    assert psi_bins(rb, wb) == pytest.approx(psi.drift_score, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_evidently_chisquare_is_goodness_of_fit_not_homogeneity(shift: float) -> None:
    # evidently's "chisquare" is scipy.stats.chisquare of window counts against reference
    # proportions (reference treated as known); ours is the 2 x k homogeneity test (reference
    # is a sample too), so p-values differ. Both are reproducible from the same bin counts.
    ref, win = _cat_pair(shift)
    rb, wb = _cat_bins(ref, win)
    res = ev.chi_stat_test(pd.Series(ref), pd.Series(win), ColumnType.Categorical, 0.05)
    gof = stats.chisquare(wb.counts[:-1], rb.counts[:-1] * wb.total / rb.total)
    assert gof.pvalue == pytest.approx(res.drift_score, rel=1e-9, abs=1e-300)
    _, p = chi2_bins(rb, wb)
    assert p >= gof.pvalue  # homogeneity accounts for reference noise: never more significant here
    assert (p < 0.05) == res.drifted


@settings(max_examples=300, deadline=None)
@given(
    ref=st.lists(st.floats(-1e3, 1e3, allow_nan=False).map(lambda x: round(x, 1)), min_size=1, max_size=60),
    win=st.lists(st.floats(-1e3, 1e3, allow_nan=False).map(lambda x: round(x, 1)), min_size=1, max_size=60),
)
def test_ks_wasserstein_fast_path_equals_scipy_on_arbitrary_samples(ref: list[float], win: list[float]) -> None:
    """Both exact routes (C merge; numpy O(n_window log n_reference)) against scipy on tiny,
    tied, disjoint samples."""
    r = np.sort(np.array(ref))
    for merge in (True, False):
        d, _, w = ks_wasserstein_samples(r, np.array(win), merge=merge)
        assert d == stats.ks_2samp(r, win).statistic  # same counts, same two divisions: bit for bit
        assert w == pytest.approx(stats.wasserstein_distance(r, win), rel=1e-9, abs=1e-9)
