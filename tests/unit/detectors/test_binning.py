"""Reference-binned summaries: counts against numpy, mergeability, bad parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detectors.binning import BinCounts, CategoricalBins, NumericBins

floats = st.one_of(st.floats(-1e6, 1e6), st.just(np.nan))
num_arrays = hnp.arrays(np.float64, st.integers(0, 300), elements=floats)
cat_values = st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d", "zz"]), st.none(), st.integers(0, 3)), max_size=200)


def _same(a: BinCounts, b: BinCounts) -> bool:
    return np.array_equal(a.edges, b.edges) and np.array_equal(a.counts, b.counts) and a.nulls == b.nulls


def test_numeric_counts_match_numpy_histogram() -> None:
    rng = np.random.default_rng(1)
    ref = rng.lognormal(size=10_000)
    win = np.concatenate([rng.lognormal(0.3, size=3_000), [np.nan] * 11, [-5.0, 1e9]])
    b = NumericBins(25).fit(ref)
    s = b.summarise(win)
    finite = win[~np.isnan(win)]
    expected, _ = np.histogram(finite, bins=np.concatenate([[-np.inf], b.edges, [np.inf]]))
    assert s.counts.tolist() == expected.tolist()
    assert s.nulls == 11 and s.total == finite.size
    assert b.edges.size == 24
    ref_counts = b.summarise(ref).counts
    assert ref_counts[0] == 400 and ref_counts.max() - ref_counts.min() <= 2  # equal reference mass


def test_numeric_value_on_edge_goes_to_upper_bin() -> None:
    b = NumericBins(4).fit(np.arange(100.0))
    s = b.summarise(b.edges.copy())
    assert s.counts.tolist() == [0, 1, 1, 1]


def test_numeric_discrete_and_constant_columns() -> None:
    b = NumericBins(20).fit(np.repeat([1.0, 2.0, 3.0], 100))
    assert b.edges.tolist() == [1.0, 2.0, 3.0] or b.edges.size <= 3
    assert b.summarise(np.array([1.0, 2.0, 3.0])).counts[1:].tolist() == [1] * b.edges.size
    c = NumericBins().fit(np.full(10, 7.0))
    assert c.summarise(np.array([6.0, 7.0, 8.0])).counts.tolist() == [1, 2]


def test_numeric_accepts_integer_and_float32_input() -> None:
    b = NumericBins(5).fit(np.arange(1000))
    assert _same(b.summarise(np.arange(50, dtype=np.int32)), b.summarise(np.arange(50.0)))
    assert _same(b.summarise(np.arange(50, dtype=np.float32)), b.summarise(np.arange(50.0)))


def test_categorical_caps_counts_other_and_nulls() -> None:
    ref = np.array(["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] + [None] * 2, dtype=object)
    b = CategoricalBins(max_categories=3).fit(ref)
    assert b.categories.tolist() == ["a", "b", "c"]
    s = b.summarise(np.array(["a", "d", "new", None, np.nan, "c"], dtype=object))
    assert s.counts.tolist() == [1, 0, 1, 2] and s.nulls == 2


def test_categorical_string_keys_unify_types() -> None:
    b = CategoricalBins().fit(pd.Series([1, 2, 2, True]))
    assert b.summarise(np.array(["1", 2, "True"], dtype=object)).counts.tolist() == [1, 1, 1, 0]


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e6, 1e6)),
    num_arrays, num_arrays, st.integers(2, 30),
)
def test_numeric_merge_equals_summary_of_concatenation(ref: np.ndarray, a: np.ndarray, b: np.ndarray, n_bins: int) -> None:
    bins = NumericBins(n_bins).fit(ref)
    merged = bins.summarise(a)
    merged += bins.summarise(b)
    assert _same(merged, bins.summarise(np.concatenate([a, b])))
    assert _same(bins.summarise(a) + bins.summarise(b), merged)


@settings(max_examples=80, deadline=None)
@given(cat_values.filter(lambda v: any(x is not None for x in v)), cat_values, cat_values, st.integers(1, 4))
def test_categorical_merge_equals_summary_of_concatenation(ref: list, a: list, b: list, cap: int) -> None:
    bins = CategoricalBins(cap).fit(np.array(ref, dtype=object))
    merged = bins.summarise(np.array(a, dtype=object)) + bins.summarise(np.array(b, dtype=object))
    assert _same(merged, bins.summarise(np.array(a + b, dtype=object)))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d", "zz"]), st.none()), max_size=200).filter(
    lambda v: any(x is not None for x in v)), cat_values, st.integers(1, 6), st.booleans())
def test_categorical_fit_on_pandas_categorical_equals_object_values(ref: list, win: list, cap: int, unused: bool) -> None:
    """A pandas categorical reference (what pyarrow's dictionary columns become) is fitted from
    its codes; categories, counts and nulls equal those of the same values as objects."""
    cat = pd.Series(pd.Categorical(ref))
    if unused:
        cat = cat.cat.add_categories(["never"])
    a, b = CategoricalBins(cap).fit(cat), CategoricalBins(cap).fit(np.array(ref, dtype=object))
    assert a.categories.tolist() == b.categories.tolist()
    assert _same(a.summarise(cat), b.summarise(np.array(ref, dtype=object)))
    w = np.array(win, dtype=object)
    assert _same(a.summarise(w), b.summarise(w))


def test_categorical_fit_on_all_null_categorical_raises() -> None:
    with pytest.raises(ValueError, match="no non-null"):
        CategoricalBins().fit(pd.Series(pd.Categorical([None, None], categories=["a"])))


def test_merge_on_different_edges_raises() -> None:
    a = NumericBins(4).fit(np.arange(100.0)).summarise(np.arange(10.0))
    b = NumericBins(5).fit(np.arange(100.0)).summarise(np.arange(10.0))
    c = NumericBins(4).fit(np.arange(1.0, 101.0)).summarise(np.arange(10.0))
    for other in (b, c):
        with pytest.raises(ValueError):
            a += other


def test_state_is_plain_json() -> None:
    s = NumericBins(4).fit(np.arange(100.0)).summarise(np.array([1.0, np.nan]))
    assert s.state() == {"counts": [1, 0, 0, 0], "nulls": 1}


@pytest.mark.parametrize("factory", [
    lambda: NumericBins(1), lambda: NumericBins(0), lambda: NumericBins(2.5),  # type: ignore[arg-type]
    lambda: CategoricalBins(0), lambda: CategoricalBins(-3),
    lambda: NumericBins().fit(np.array([np.nan, np.nan])),
    lambda: CategoricalBins().fit(np.array([None, np.nan], dtype=object)),
])
def test_bad_parameters_raise_value_error(factory) -> None:
    with pytest.raises(ValueError):
        factory()


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(-1e3, 1e3)),
    hnp.arrays(np.float64, st.integers(0, 300),
               elements=st.one_of(st.floats(-2e3, 2e3), st.sampled_from([np.nan, np.inf, -np.inf]))),
    st.integers(2, 80),
)
def test_numeric_counts_match_searchsorted_for_few_and_many_edges(ref: np.ndarray, win: np.ndarray, n_bins: int) -> None:
    b = NumericBins(n_bins).fit(ref)
    s = b.summarise(win)
    finite = win[~np.isnan(win)]
    expected = np.bincount(np.searchsorted(b.edges, finite, side="right"), minlength=b.edges.size + 1)
    assert s.counts.tolist() == expected.tolist() and s.nulls == int(np.isnan(win).sum())
