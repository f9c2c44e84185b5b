"""FeatureDrift / DatasetDrift: statistics against scipy, mergeable summaries, large windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial import distance

from detectors.drift import DatasetDrift, FeatureDrift, FeatureSummary
from detectors.univariate import ks_bins, wasserstein_bins
from detectors.verdict import VerdictPolicy
from tests.support.data import data_file

CAR_FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length",
                "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure"]


def _same_summary(a: FeatureSummary, b: FeatureSummary) -> bool:
    same_bins = (np.array_equal(a.bins.edges, b.bins.edges) and np.array_equal(a.bins.counts, b.bins.counts)
                 and a.bins.nulls == b.bins.nulls)
    va, vb = a.values(), b.values()
    same_sample = (va is None and vb is None) or (va is not None and vb is not None and np.array_equal(va, vb))
    return same_bins and same_sample


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(0, 80), elements=st.one_of(st.floats(-1e3, 1e3), st.just(np.nan))),
    hnp.arrays(np.float64, st.integers(0, 80), elements=st.one_of(st.floats(-1e3, 1e3), st.just(np.nan))),
    st.integers(0, 120),
)
def test_numeric_summary_merge_equals_summary_of_concatenation(a: np.ndarray, b: np.ndarray, cap: int) -> None:
    fd = FeatureDrift("x", "numeric", sample_cap=cap).fit(np.linspace(-500, 500, 101))
    merged = fd.summarise(a)
    merged += fd.summarise(b)
    whole = fd.summarise(np.concatenate([a, b]))
    assert _same_summary(merged, whole)
    start = fd.empty()
    start += fd.summarise(np.concatenate([a, b]))
    assert _same_summary(start, whole)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", None, "new"]), max_size=60),
       st.lists(st.sampled_from(["a", "b", "c", None, "new"]), max_size=60))
def test_categorical_summary_merge_equals_summary_of_concatenation(a: list, b: list) -> None:
    fd = FeatureDrift("c", "categorical").fit(np.array(list("aabbbc"), dtype=object))
    merged = fd.summarise(np.array(a, dtype=object)).copy()
    merged += fd.summarise(np.array(b, dtype=object))
    assert _same_summary(merged, fd.summarise(np.array(a + b, dtype=object)))


def test_numeric_compare_matches_scipy_exact_and_binned() -> None:
    rng = np.random.default_rng(3)
    ref, win = rng.normal(size=20_000), rng.normal(0.2, 1.0, size=3_000)
    fd = FeatureDrift("x", "numeric").fit(ref)
    primary, every = fd.compare(fd.summarise(win))
    by = {r.method: r for r in every}
    expected = stats.ks_2samp(ref, win)
    assert primary is by["ks"] and primary.drifted is False  # decided later, across features
    assert primary.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert primary.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert primary.effect_size == pytest.approx(stats.wasserstein_distance(ref, win) / ref.std(), rel=1e-9)
    assert by["wasserstein"].statistic == primary.effect_size
    p, q = fd._ref_bins.counts / ref.size, fd.summarise(win).bins.counts / win.size
    assert by["js"].statistic == pytest.approx(distance.jensenshannon(p, q, base=2), rel=1e-12)
    # Past the sample cap: binned KS / Wasserstein, and no reference column kept at cap 0.
    for cap in (0, 1_000):
        fb = FeatureDrift("x", "numeric", sample_cap=cap).fit(ref)
        s = fb.summarise(win)
        assert s.sample is None
        pb, _ = fb.compare(s)
        d, pv, _ = ks_bins(fb._ref_bins, s.bins)
        assert (pb.statistic, pb.p_value) == (d, pv)
        assert pb.effect_size == wasserstein_bins(fb._ref_bins, s.bins, ref.min(), ref.max(), ref.std())
        assert pb.effect_size == pytest.approx(primary.effect_size, rel=0.2)
    assert FeatureDrift("x", "numeric", sample_cap=0).fit(ref)._ref_sorted is None


def test_categorical_compare_matches_chi2_contingency() -> None:
    rng = np.random.default_rng(4)
    ref = rng.choice(list("abcd"), 5_000, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    win = rng.choice(list("abcde"), 2_000, p=[0.3, 0.3, 0.2, 0.15, 0.05]).astype(object)
    fd = FeatureDrift("c", "categorical").fit(ref)
    s = fd.summarise(win)
    primary, _ = fd.compare(s)
    table = np.vstack([fd._ref_bins.counts, s.bins.counts])  # "other" holds the unseen "e"
    expected = stats.chi2_contingency(table, correction=False)
    assert primary.method == "chi2"
    assert (primary.statistic, primary.p_value) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)
    assert primary.effect_size == pytest.approx(
        distance.jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2), rel=1e-12
    )


@pytest.fixture(scope="module")
def large_reference() -> np.ndarray:
    return np.random.default_rng(11).normal(size=1_000_000)


@pytest.mark.parametrize("sample_cap", [100_000, 2_000_000], ids=["binned", "exact"])
def test_huge_window_trivial_shift_is_significant_but_not_flagged(large_reference: np.ndarray, sample_cap: int) -> None:
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"x": large_reference})
    dd = DatasetDrift(sample_cap=sample_cap).fit(ref)
    trivial = dd.compare(dd.summarise(pd.DataFrame({"x": rng.normal(0.01, 1.0, 1_000_000)})))
    (r,) = trivial.features
    assert r.p_value < 0.05  # significant by p-value ...
    assert r.effect_size < 0.02 and not r.drifted  # ... but below the effect floor
    assert not trivial.drifted and trivial.n_current == 1_000_000
    big = dd.compare(dd.summarise(pd.DataFrame({"x": rng.normal(0.5, 1.0, 1_000_000)})))
    assert big.features[0].drifted
    # Exact Wasserstein is 0.5 sd; the binned one (20 bins, past the sample cap) spreads each
    # outer bin's mass evenly out to the reference min/max and over-estimates (about 0.63 here).
    assert 0.45 <= big.features[0].effect_size <= (0.55 if sample_cap > 1_000_000 else 0.7)


def test_small_window_shift_flagged_and_policy_respected() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=20_000), "y": rng.normal(size=20_000),
                        "c": rng.choice(list("abc"), 20_000).astype(object)})
    cur = pd.DataFrame({"x": rng.normal(0.5, 1.0, 5_000), "y": rng.normal(size=5_000),
                        "c": rng.choice(list("abc"), 5_000, p=[0.6, 0.2, 0.2]).astype(object)})
    report = DatasetDrift().fit(ref).compare(DatasetDrift().fit(ref).summarise(cur))
    assert {r.feature: r.drifted for r in report.features} == {"x": True, "y": False, "c": True}
    assert report.drift_share == pytest.approx(2 / 3)
    d = report.to_dict()
    assert set(d) == {"drifted", "dataset_drift_share", "features"}
    assert set(d["features"]["x"]) == {"drifted", "method", "statistic", "p_value", "effect_size"}
    strict = DatasetDrift(policy=VerdictPolicy(effect_floor=0.9), methods={"c": "psi"}).fit(ref)
    out = {r.feature: r for r in strict.compare(strict.summarise(cur)).features}
    assert not out["x"].drifted and out["c"].method == "psi" and out["c"].p_value is None


def test_car_loan_resample_of_reference_is_quiet() -> None:
    ref = pd.read_csv(data_file("synthetic_car_loan_reference.csv"), usecols=CAR_FEATURES)
    dd = DatasetDrift().fit(ref)
    kinds = {n: f.kind for n, f in dd.features.items()}
    assert kinds["repaid_loan_on_prev_car"] == "categorical" and kinds["car_value"] == "numeric"
    window = ref.sample(5_000, replace=True, random_state=1)
    report = dd.compare(dd.summarise(window))
    assert not report.drifted and len(report.features) == len(CAR_FEATURES)
    assert len(report.scores) == 4 * 5 + 3 * 4  # every statistic for dashboards


def test_all_null_window_is_skipped_and_missing_column_raises() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0), "c": list("ab") * 50})
    dd = DatasetDrift().fit(ref)
    report = dd.compare(dd.summarise({"x": np.full(10, np.nan), "c": np.array(list("ab") * 5, dtype=object)}))
    assert [r.feature for r in report.features] == ["c"]
    with pytest.raises(ValueError, match="lacks features"):
        dd.summarise({"x": np.ones(3)})


@pytest.mark.parametrize("kwargs", [
    {"kind": "text"}, {"kind": "numeric", "method": "chi2"}, {"kind": "categorical", "method": "ks"},
    {"kind": "numeric", "sample_cap": -1}, {"kind": "numeric", "n_bins": 1},
])
def test_feature_drift_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FeatureDrift("f", **kwargs).fit(np.arange(10.0))


def test_unfitted_feature_drift_raises() -> None:
    with pytest.raises(RuntimeError):
        FeatureDrift("f", "numeric").summarise(np.ones(3))
