"""Slice discovery: planted slices found first, clean data quiet under BH, statistics equal to
scipy's on the same rows (brute-force oracle), reference-fixed levels, NaN/unseen values,
pruning that never changes the top slices, and bad parameters."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.binning import NumericBins
from detectors.rca import ColumnBins, Slice, SliceReport, find_slices


def _frame(n: int, rng: np.random.Generator, n_num: int = 4, n_cat: int = 4) -> pd.DataFrame:
    cols: dict[str, object] = {}
    for i in range(n_num):
        cols[f"x{i}"] = rng.standard_normal(n) * (i + 1) + i
    for i in range(n_cat):
        k = 3 + i
        p = np.array([0.2] + [0.8 / (k - 1)] * (k - 1)) if i == 0 else rng.dirichlet(np.ones(k) * 3)
        cols[f"c{i}"] = np.array([chr(97 + j) for j in range(k)], dtype=object)[rng.choice(k, n, p=p)]
    return pd.DataFrame(cols)


def _planted(n: int, seed: int, rate: float = 0.4, base: float = 0.1):
    rng = np.random.default_rng(seed)
    ref, win = _frame(n, rng), _frame(n, rng)
    q90 = NumericBins(10).fit(ref["x0"].to_numpy()).edges[-1]
    mask = (win["c0"] == "a").to_numpy() & (win["x0"].to_numpy() >= q90)  # 20 % x 10 % = 2 %
    errors = (rng.random(n) < np.where(mask, rate, base)).astype(int)
    ref_errors = (rng.random(n) < base).astype(int)
    return win, errors, ref, ref_errors, mask, q90


# ----------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_two_predicate_slice_is_ranked_first(seed: int) -> None:
    win, errors, ref, ref_errors, mask, _ = _planted(20_000, seed)
    report = find_slices(win, errors, ref, list(win.columns), reference_errors=ref_errors)
    top = report.slices[0]
    assert {c for c, _ in top.predicates} == {"x0", "c0"}
    assert dict(top.predicates)["c0"] == "a" and dict(top.predicates)["x0"].endswith(", inf)")
    assert top.significant and top.support == mask.sum()
    assert np.array_equal(report.mask(win, top), mask)
    # the parents it explains come right after it (they tie with it on score), not before
    labels = [s.label for s in report.slices[:3]]
    assert "c0=a" in labels and any(lbl.startswith("x0=[") and "&" not in lbl for lbl in labels)
    assert 0.3 < top.explained < 2.0  # the reference level is itself noisy
    assert top.explained == pytest.approx(top.score / (report.n * (report.error - report.reference_error)))
    assert top.reference_support == report.mask(ref, top).sum()
    assert top.reference_error == pytest.approx(ref_errors[report.mask(ref, top)].mean())


def test_single_column_slice_beats_its_pairs() -> None:
    rng = np.random.default_rng(5)
    ref, win = _frame(10_000, rng), _frame(10_000, rng)
    bad = (win["c1"] == "b").to_numpy()
    errors = (rng.random(10_000) < np.where(bad, 0.3, 0.1)).astype(int)
    report = find_slices(win, errors, ref, list(win.columns))
    assert report.slices[0].predicates == (("c1", "b"),)


def test_regression_losses_use_welch_and_find_the_slice() -> None:
    rng = np.random.default_rng(3)
    ref, win = _frame(8_000, rng), _frame(8_000, rng)
    q80 = NumericBins(5).fit(ref["x1"].to_numpy()).edges[-1]
    bad = (win["c2"] == "a").to_numpy() & (win["x1"].to_numpy() >= q80)
    losses = rng.gamma(2.0, 1.0, 8_000) + np.where(bad, 1.5, 0.0) + 100.0  # a large offset, on purpose
    report = find_slices(win, losses, ref, list(win.columns), n_bins=5)
    assert report.test == "welch"
    top = report.slices[0]
    assert {c for c, _ in top.predicates} == {"c2", "x1"} and top.significant
    for s in report.slices:
        m = report.mask(win, s)
        res = stats.ttest_ind(losses[m], losses[~m], equal_var=False, alternative="greater")
        assert s.p_value == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)
        assert s.error == pytest.approx(losses[m].mean(), rel=1e-12)
        assert s.rest_error == pytest.approx(losses[~m].mean(), rel=1e-12)
        half = stats.t.ppf(0.975, m.sum() - 1) * losses[m].std(ddof=1) / np.sqrt(m.sum())
        assert s.ci == pytest.approx((losses[m].mean() - half, losses[m].mean() + half), rel=1e-9)


# ----------------------------------------------------------------------------- false discoveries


def test_clean_data_rarely_reports_a_significant_slice() -> None:
    """Errors independent of the features: BH at 5 % across every candidate (singles and pairs)
    should flag a slice in about 5 % of windows at most (positively dependent tests: fewer)."""
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(10_000 + seed)
        ref, win = _frame(4_000, rng, 3, 3), _frame(4_000, rng, 3, 3)
        errors = (rng.random(4_000) < 0.15).astype(int)
        report = find_slices(win, errors, ref, list(win.columns), top_k=10_000, min_fraction=0.0)
        assert report.tested > 100
        flagged += bool(report.significant)
    assert flagged <= 2


# ----------------------------------------------------------------------------- exact statistics


def _brute_force(report: SliceReport, win: pd.DataFrame, errors: np.ndarray, max_order: int = 2):
    """Every eligible single and pair slice from row masks, with scipy's binomtest and BH."""
    codes = {b.column: b.codes(win[b.column]) for b in report.bins}
    levels = {b.column: b.levels for b in report.bins}
    n, thr = len(win), report.min_support
    cands: list[tuple[tuple[tuple[str, str], ...], np.ndarray]] = []
    for col in codes:
        for i, lvl in enumerate(levels[col]):
            cands.append((((col, lvl),), codes[col] == i))
    if max_order == 2:
        for a, b in combinations(list(codes), 2):
            for i, la in enumerate(levels[a]):
                for j, lb in enumerate(levels[b]):
                    cands.append((((a, la), (b, lb)), (codes[a] == i) & (codes[b] == j)))
    out = {}
    for preds, m in cands:
        s = int(m.sum())
        if s < thr or n - s < thr:
            continue
        k, rest = int(errors[m].sum()), errors[~m].mean()
        out[preds] = (s, k, stats.binomtest(k, s, rest, alternative="greater").pvalue,
                      s * (k / s - rest))
    keys = list(out)
    adjusted = stats.false_discovery_control([out[k][2] for k in keys])
    return {k: (*out[k], adj) for k, adj in zip(keys, adjusted)}


@pytest.mark.parametrize("planted", [True, False])
def test_binomial_pvalues_and_bh_equal_scipy_on_the_same_rows(planted: bool) -> None:
    win, errors, ref, _, _, _ = _planted(3_000, 7, rate=0.5 if planted else 0.1)
    win, ref = win[["x0", "x1", "c0", "c1"]], ref[["x0", "x1", "c0", "c1"]]
    report = find_slices(win, errors, ref, list(win.columns), top_k=100_000, n_bins=5, prune=False)
    oracle = _brute_force(report, win, errors)
    assert report.tested == len(oracle)
    positive = {k for k, v in oracle.items() if v[3] > 0}
    assert {s.predicates for s in report.slices} == positive
    for s in report.slices:
        support, k, p, score, adj = oracle[s.predicates]
        assert s.support == support
        assert s.p_value == pytest.approx(p, rel=1e-12, abs=1e-300)
        assert s.p_adjusted == pytest.approx(adj, rel=1e-12, abs=1e-300)
        assert s.significant == (adj <= 0.05)
        assert s.score == pytest.approx(score, rel=1e-12)
        assert s.error == k / support
        assert s.ci == pytest.approx(_wilson(k, support), rel=1e-12)
    assert any(s.significant for s in report.slices) == planted


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def test_ranking_is_by_score_apart_from_the_specificity_rule() -> None:
    win, errors, ref, _, _, _ = _planted(3_000, 8, rate=0.1)  # nothing planted
    report = find_slices(win, errors, ref, list(win.columns), top_k=50)
    scores = [s.score for s in report.slices]
    assert all(s > 0 for s in scores)
    singles = [s.score for s in report.slices if len(s.predicates) == 1]
    pairs = [s.score for s in report.slices if len(s.predicates) == 2]
    assert singles == sorted(singles, reverse=True) and pairs == sorted(pairs, reverse=True)


# ----------------------------------------------------------------------------- levels


def test_numeric_bin_edges_come_from_the_reference() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.standard_normal(5_000)})
    win = pd.DataFrame({"x": rng.standard_normal(5_000) + 3.0})  # mostly beyond the reference
    errors = (rng.random(5_000) < np.where(win["x"] > 3.0, 0.3, 0.1)).astype(int)
    report = find_slices(win, errors, ref, ["x"], n_bins=5)
    (bins,) = report.bins
    assert bins.kind == "numeric"
    assert bins.edges == tuple(NumericBins(5).fit(ref["x"].to_numpy()).edges.tolist())
    assert bins.edges == pytest.approx(np.quantile(ref["x"], [0.2, 0.4, 0.6, 0.8]).tolist())
    assert bins.levels[-2].endswith(", inf)") and bins.levels[-1] == "__null__"
    codes = bins.codes(win["x"])
    assert (codes[win["x"].to_numpy() > ref["x"].max()] == len(bins.edges)).all()  # outer bin
    # the window alone would put 4 edges inside its own range: none of those is used
    assert not np.allclose(bins.edges, np.quantile(win["x"], [0.2, 0.4, 0.6, 0.8]))


def test_nan_unseen_and_rare_categories() -> None:
    rng = np.random.default_rng(1)
    n = 6_000
    ref = pd.DataFrame({"x": rng.standard_normal(n), "c": rng.choice(["a", "b", "c"], n).astype(object)})
    win = pd.DataFrame({"x": rng.standard_normal(n), "c": rng.choice(["a", "b", "c"], n).astype(object)})
    x, c = win["x"].to_numpy().copy(), win["c"].to_numpy().copy()
    x[:300] = np.nan                  # missing numeric values, with high error
    c[300:700] = "zz"                 # unseen in the reference but frequent in the window
    c[700:710] = "rare"               # unseen and rare: pooled
    c[710:760] = None                 # missing category
    win = win.assign(x=x, c=c)
    errors = (rng.random(n) < 0.1).astype(int)
    errors[:300] = rng.random(300) < 0.6
    errors[300:700] = rng.random(400) < 0.5
    report = find_slices(win, errors, ref, ["x", "c"], min_support=30, min_fraction=0.0, top_k=50)
    by = {s.predicates: s for s in report.slices}
    assert (("x", "__null__"),) in by and by[(("x", "__null__"),)].support == 300
    assert (("c", "zz"),) in by and by[(("c", "zz"),)].support == 400
    assert by[(("x", "__null__"),)].significant and by[(("c", "zz"),)].significant
    cbins = next(b for b in report.bins if b.column == "c")
    assert cbins.levels == ("a", "b", "c", "zz", "__other__", "__null__")
    codes = cbins.codes(win["c"])
    assert (codes[700:710] == 4).all() and (codes[710:760] == 5).all()
    assert by[(("c", "zz"),)].reference_support == 0


def test_categorical_levels_are_capped_and_numeric_can_be_forced_categorical() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"k": rng.integers(0, 40, 5_000), "z": rng.integers(0, 3, 5_000)})
    win = pd.DataFrame({"k": rng.integers(0, 40, 5_000), "z": rng.integers(0, 3, 5_000)})
    errors = (rng.random(5_000) < 0.2).astype(int)
    report = find_slices(win, errors, ref, ["k", "z"], categorical=["k", "z"], max_levels=5, min_fraction=0.0)
    kb, zb = report.bins
    assert kb.kind == "categorical" and len(kb.levels) == 5 + 2
    assert zb.levels == ("0", "1", "2", "__other__", "__null__")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(40, 400), st.integers(2, 8), st.floats(0.0, 0.3))
def test_single_column_levels_partition_the_window(seed: int, n: int, n_bins: int, null_share: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    x[rng.random(n) < null_share] = np.nan
    c = rng.choice(np.array(["a", "b", "c", None], dtype=object), n, p=[0.5, 0.3, 0.15, 0.05])
    win = pd.DataFrame({"x": x, "c": c})
    ref = pd.DataFrame({"x": rng.standard_normal(n), "c": rng.choice(["a", "b", "d"], n).astype(object)})
    errors = (rng.random(n) < 0.3).astype(int)
    report = find_slices(win, errors, ref, ["x", "c"], min_support=2, min_fraction=0.0, top_k=10_000,
                         n_bins=n_bins, max_order=1)
    for b in report.bins:
        masks = [report.mask(win, Slice(((b.column, lvl),), 0, 0, 0, 0, 0, 0, 1, 1, False, (0, 1), 0, 0))
                 for lvl in b.levels]
        assert sum(int(m.sum()) for m in masks) == n  # the supports of one column's slices sum to n
        assert (np.sum(masks, axis=0) == 1).all()     # and every row is in exactly one
    for s in report.slices:
        assert s.support == report.mask(win, s).sum()


# ----------------------------------------------------------------------------- pruning


def test_pruning_never_changes_the_top_slices() -> None:
    rng = np.random.default_rng(4)
    n = 50_000
    ref, win = _frame(n, rng, 6, 6), _frame(n, rng, 6, 6)
    bad = (win["c2"] == "a").to_numpy()
    errors = (rng.random(n) < np.where(bad, 0.9, 0.02)).astype(int)  # a strong single-column cause
    for top_k in (1, 3):
        pruned = find_slices(win, errors, ref, list(win.columns), top_k=top_k)
        full = find_slices(win, errors, ref, list(win.columns), top_k=top_k, prune=False)
        assert pruned.pruned > 0 and full.pruned == 0
        assert pruned.tested >= full.tested  # pruned cells count (as p = 1): never fewer tests
        assert [s.predicates for s in pruned.slices] == [s.predicates for s in full.slices]
        for a, b in zip(pruned.slices, full.slices):
            assert (a.support, a.score, a.p_value) == (b.support, b.score, b.p_value)
            assert a.p_adjusted >= b.p_adjusted


# ----------------------------------------------------------------------------- values and parameters


def test_reports_round_trip_through_json() -> None:
    win, errors, ref, ref_errors, _, _ = _planted(5_000, 0)
    for kwargs in ({"reference_errors": ref_errors}, {}):  # the second has NaN fields
        report = find_slices(win, errors, ref, list(win.columns), **kwargs)
        d = report.to_dict()
        assert json.dumps(SliceReport.from_dict(json.loads(json.dumps(d))).to_dict()) == json.dumps(d)
        back = SliceReport.from_dict(orjson.loads(orjson.dumps(d)))
        assert json.dumps(back.to_dict()) == json.dumps(d)
        assert back.slices[0].predicates == report.slices[0].predicates
    s = report.slices[0]
    assert Slice.from_dict(json.loads(json.dumps(s.to_dict()))).label == s.label
    b = report.bins[0]
    assert ColumnBins.from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_empty_result_when_nothing_is_large_enough() -> None:
    rng = np.random.default_rng(0)
    win = pd.DataFrame({"c": rng.choice(["a", "b"], 50)})
    report = find_slices(win, rng.integers(0, 2, 50), win, ["c"], min_support=30)
    assert report.slices == () and report.tested == 0 and report.n == 50


def test_max_order_one_gives_single_columns_only() -> None:
    win, errors, ref, _, _, _ = _planted(5_000, 1)
    report = find_slices(win, errors, ref, list(win.columns), max_order=1, top_k=100)
    assert report.slices and all(len(s.predicates) == 1 for s in report.slices)


_W = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 20, "b": list("xyz") * 20})
_E = np.zeros(60)


@pytest.mark.parametrize("kwargs, name", [
    ({"max_order": 3}, "max_order"), ({"max_order": 0}, "max_order"), ({"min_support": 1}, "min_support"),
    ({"min_fraction": 1.0}, "min_fraction"), ({"min_fraction": -0.1}, "min_fraction"),
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"top_k": 0}, "top_k"), ({"n_bins": 1}, "n_bins"),
    ({"max_levels": 0}, "max_levels"), ({"confidence": 1.0}, "confidence"), ({"test": "z"}, "test"),
    ({"categorical": ["nope"]}, "categorical"), ({"prune": "yes"}, "prune"),
    ({"reference_errors": np.zeros(3)}, "reference_errors"), ({"test": "binomial", "errors": np.full(60, 0.5)}, "errors"),
    ({"errors": np.zeros(59)}, "errors"), ({"errors": np.full(60, np.nan)}, "errors"),
    ({"errors": np.array(["a"] * 60)}, "errors"), ({"columns": []}, "columns"), ({"columns": "a"}, "columns"),
    ({"columns": ["a", "a"]}, "columns"), ({"columns": ["q"]}, "columns"), ({"window": _W.iloc[:0]}, "window"),
    ({"reference": "frame"}, "reference"),
])
def test_bad_parameters_raise_value_error_naming_them(kwargs: dict, name: str) -> None:
    args = {"window": _W, "errors": _E, "reference": _W, "columns": ["a", "b"]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        find_slices(args.pop("window"), args.pop("errors"), args.pop("reference"), args.pop("columns"), **args)


def test_pandas_dtypes_categorical_bool_nullable_and_type_faults() -> None:
    rng = np.random.default_rng(6)
    n = 3_000

    def frame() -> pd.DataFrame:
        return pd.DataFrame({
            "cat": pd.Categorical(rng.choice(["u", "v", "w"], n)),
            "flag": rng.random(n) < 0.3,
            "count": pd.array(rng.integers(0, 50, n), dtype="Int64"),
        })
    ref, win = frame(), frame()
    win["count"] = win["count"].astype(object)
    win.loc[:199, "count"] = "n/a"     # a type fault in the window: not a number -> the null level
    win.loc[200:249, "count"] = pd.NA
    errors = (rng.random(n) < np.where(win["flag"] & (win["cat"] == "v"), 0.5, 0.1)).astype(int)
    errors[:200] = 1
    report = find_slices(win, errors, ref, ["cat", "flag", "count"], n_bins=4, top_k=20)
    kinds = {b.column: b.kind for b in report.bins}
    assert kinds == {"cat": "categorical", "flag": "categorical", "count": "numeric"}
    by = {s.predicates: s for s in report.slices}
    assert by[(("count", "__null__"),)].support == 250
    assert report.slices[0].predicates == (("count", "__null__"),)
    assert (("cat", "v"), ("flag", "True")) in by
    assert np.isnan(report.reference_error) and all(np.isnan(s.explained) for s in report.slices)


def test_constant_losses_give_certain_not_nan_pvalues() -> None:
    win = pd.DataFrame({"g": ["a"] * 100 + ["b"] * 300})
    losses = np.where(win["g"] == "a", 2.0, 1.0)
    report = find_slices(win, losses, win, ["g"], min_support=30, test="welch")
    (top,) = report.slices
    assert top.predicates == (("g", "a"),) and top.p_value == 0.0 and top.significant
    assert top.ci == (2.0, 2.0)
