"""Training-serving skew: scale changes, category distances, shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.binning import BinCounts, CategoricalBins
from detectors.schema import ColumnSchema, Schema
from detectors.skew import linf_distance, scale_factor, value_skew
from detectors.univariate import jensen_shannon_bins
from tests.support.data import data_file


@pytest.fixture(scope="module")
def car() -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    ref = pd.read_csv(data_file("synthetic_car_loan_reference.csv"), usecols=["car_value", "salary_range"])
    ana = pd.read_csv(data_file("synthetic_car_loan_analysis.csv"), usecols=["car_value", "salary_range"])
    return ref, ana, Schema.infer(ref)


@pytest.mark.parametrize(("factor", "expected"), [(1.0, None), (100.0, 100.0), (1000.0, 1000.0),
                                                   (0.01, 0.01), (1e6, 1e6), (10.0, 10.0)])
def test_scale_factor_on_car_value(car, factor: float, expected: float | None) -> None:
    ref, ana, schema = car
    values = ana["car_value"].to_numpy()[:5_000] * factor
    got = scale_factor(schema["car_value"], values)
    assert got == (None if expected is None else pytest.approx(expected))


def test_scale_factor_none_for_categorical_empty_and_zero(car) -> None:
    _, _, schema = car
    assert scale_factor(schema["salary_range"], np.array([1.0])) is None
    assert scale_factor(schema["car_value"], np.array([np.nan])) is None
    assert scale_factor(schema["car_value"], np.zeros(5)) is None


def test_linf_matches_direct_computation(car) -> None:
    ref, ana, schema = car
    bins = CategoricalBins().fit(ref["salary_range"])
    rb, wb = bins.summarise(ref["salary_range"]), bins.summarise(ana["salary_range"].iloc[:5_000])
    p = ref["salary_range"].value_counts(normalize=True)
    q = ana["salary_range"].iloc[:5_000].value_counts(normalize=True).reindex(p.index, fill_value=0.0)
    assert linf_distance(rb, wb) == pytest.approx(float((p - q).abs().max()), rel=1e-12)
    assert linf_distance(rb, rb) == 0.0
    with pytest.raises(ValueError):
        linf_distance(rb, BinCounts(rb.edges, np.zeros_like(rb.counts)))


def test_value_skew_shares(car) -> None:
    ref, _, schema = car
    cv = schema["car_value"]
    values = np.array([cv.min - 1, cv.max + 1, cv.quantiles["p50"], np.nan, cv.quantiles["p50"]])
    r = value_skew(cv, values)
    assert (r.n, r.out_of_range_share, r.null_share, r.null_rate_change) == (5, 0.4, 0.2, 0.2)
    assert r.scale_factor is None and r.linf is None
    sal = schema["salary_range"]
    bins = CategoricalBins().fit(ref["salary_range"])
    cats = np.array([sal.categories[0], "new", None, sal.categories[1]], dtype=object)
    rs = value_skew(sal, cats, bins.summarise(ref["salary_range"]), bins.summarise(cats))
    assert (rs.unseen_category_share, rs.null_share) == (0.25, 0.25)
    assert rs.linf == linf_distance(bins.summarise(ref["salary_range"]), bins.summarise(cats))
    assert rs.js == jensen_shannon_bins(bins.summarise(ref["salary_range"]), bins.summarise(cats))
    assert value_skew(sal, np.array([], dtype=object)).n == 0


def test_scale_factor_doctest_column() -> None:
    col = ColumnSchema("p", "numeric", "float64", 0.0, 3, 1.0, 3.0, 2.0, 1.0, {"p50": 2.0})
    assert scale_factor(col, np.array([2000.0, 1900.0, 2100.0])) == 1000.0
    assert scale_factor(col, np.array([2.5, 1.5])) is None
