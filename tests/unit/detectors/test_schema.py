"""Schema inference on the car-loan reference, round trips, and exact violation counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from detectors.binning import CategoricalBins
from detectors.schema import ColumnSchema, Schema
from tests.support.data import data_file

CAR_FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length",
                "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure"]


@pytest.fixture(scope="module")
def car_ref() -> pd.DataFrame:
    return pd.read_csv(data_file("synthetic_car_loan_reference.csv"), usecols=CAR_FEATURES)


@pytest.fixture(scope="module")
def car_schema(car_ref: pd.DataFrame) -> Schema:
    return Schema.infer(car_ref)


def test_infer_car_loan_reference(car_ref: pd.DataFrame, car_schema: Schema) -> None:
    assert car_schema.names == CAR_FEATURES
    kinds = {c.name: c.kind for c in car_schema.columns}
    assert kinds == {"car_value": "numeric", "salary_range": "categorical", "debt_to_income_ratio": "numeric",
                     "loan_length": "numeric", "repaid_loan_on_prev_car": "categorical",
                     "size_of_downpayment": "categorical", "driver_tenure": "numeric"}
    cv = car_schema["car_value"]
    v = car_ref["car_value"].to_numpy()
    assert (cv.min, cv.max, cv.mean, cv.std) == (v.min(), v.max(), v.mean(), v.std())
    assert cv.quantiles["p50"] == np.quantile(v, 0.5) and cv.quantiles["p01"] == np.quantile(v, 0.01)
    assert cv.null_rate == 0.0 and cv.cardinality == car_ref["car_value"].nunique()
    sal = car_schema["salary_range"]
    assert sal.categories == tuple(sorted(car_ref["salary_range"].unique()))
    assert car_schema["repaid_loan_on_prev_car"].categories == ("False", "True")
    assert not sal.categories_capped
    with pytest.raises(KeyError):
        car_schema["nope"]


def test_round_trip_dict_yaml_json(car_schema: Schema) -> None:
    d = car_schema.to_dict()
    assert Schema.from_dict(d) == car_schema
    assert Schema.from_dict(yaml.safe_load(yaml.safe_dump(d, sort_keys=False))) == car_schema
    assert Schema.from_dict(json.loads(json.dumps(d))) == car_schema


def test_from_dict_rejects_unknown_keys_and_infer_missing_columns(car_ref: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown schema keys"):
        ColumnSchema.from_dict({"name": "x", "kind": "numeric", "dtype": "float64", "null_rate": 0.0,
                                "cardinality": 3, "colour": "red"})
    with pytest.raises(ValueError, match="not in the reference"):
        Schema.infer(car_ref, columns=["car_value", "nope"])


def test_capped_categories_and_nulls() -> None:
    frame = pd.DataFrame({"c": ["a", "a", "b", "c", None], "x": [1.0, np.nan, 3.0, 4.0, 5.0]})
    s = Schema.infer(frame, max_categories=2)
    assert s["c"].categories == ("a", "b") or s["c"].categories == ("a", "c")
    assert s["c"].categories_capped and s["c"].cardinality == 3 and s["c"].null_rate == 0.2
    assert s["x"].null_rate == 0.2 and s["x"].min == 1.0


@pytest.mark.parametrize("use_codes", [False, True])
def test_check_batch_counts_exactly(use_codes: bool) -> None:
    schema = Schema.infer(pd.DataFrame({"x": [0.0, 5.0, 10.0], "c": ["a", "b", "a"]}))
    # record:      0     1     2      3       4      5     6      7
    x = np.array([1.0, -1.0, 11.0, np.nan, np.nan, np.nan, 10.0, 0.0])
    x_missing = np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    x_type = np.array([0, 0, 0, 0, 0, 1, 0, 0], dtype=bool)  # e.g. "x": "ten" decoded as NaN
    c = np.array(["a", "zz", None, "b", None, "a", "q", None], dtype=object)
    c_missing = np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    c_type = np.array([0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    codes = {"c": CategoricalBins().fit(np.array(["a", "b"], dtype=object)).codes(c)} if use_codes else None
    v = schema.check_batch({"x": x, "c": c}, {"x": x_missing, "c": c_missing}, {"x": x_type, "c": c_type},
                           {"extra": 3, "other": 0}, codes=codes)
    assert v.schema == {("x", "missing"): 1, ("x", "type"): 1, ("c", "missing"): 1, ("c", "type"): 1,
                        ("extra", "unexpected"): 3}
    assert v.skew == {("x", "out_of_range"): 2, ("x", "null"): 1, ("c", "unseen_category"): 2, ("c", "null"): 1}


def test_check_batch_clean_batch_is_empty(car_ref: pd.DataFrame, car_schema: Schema) -> None:
    batch = car_ref.iloc[:1000]
    values = {c.name: batch[c.name].to_numpy(dtype=float if c.kind == "numeric" else object)
              for c in car_schema.columns}
    none = {n: np.zeros(len(batch), dtype=bool) for n in car_schema.names}
    v = car_schema.check_batch(values, none, none, {})
    assert v.schema == {} and v.skew == {}
