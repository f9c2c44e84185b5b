"""decode_predictions / decode_labels / extract_features: the message contract, record by record."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.decode.decoder import Rejected
from tests.support.decode import decode_labels, decode_predictions
from agent.decode.features import FeatureSpec, TypedFeatures, extract_features
from agent.decode.scanner import RecordScanner

MODELS = {"car-loan", "fraud"}
BROKER_MS = 1_790_000_000_123
SPECS = {m: FeatureSpec(("x",), ("c",)) for m in MODELS}
NATIVE_ROUTE = {"typed": TypedFeatures(SPECS), "scanner": RecordScanner(SPECS)}
ROUTE: dict[str, Any] = {}


@pytest.fixture(autouse=True, params=["exact", "native"])
def route(request: pytest.FixtureRequest) -> Any:
    """Every contract test runs on both decoding routes: msgspec + field checks alone, and the
    native scanner first (agent.decode._scan) with msgspec for what it leaves."""
    ROUTE.clear()
    if request.param == "native":
        ROUTE.update(NATIVE_ROUTE)
    yield request.param
    ROUTE.clear()


def pred(**over: Any) -> dict[str, Any]:
    rec = {"prediction_id": "a1", "model": "car-loan", "timestamp": "2026-11-22T10:00:00Z",
           "features": {"x": 1.0, "c": "k"}, "prediction": 1, "score": 0.9}
    rec.update(over)
    return {k: v for k, v in rec.items() if v is not DROP}


def label(**over: Any) -> dict[str, Any]:
    rec = {"prediction_id": "a1", "model": "car-loan", "label": 0, "timestamp": "2026-11-29T08:00:00Z"}
    rec.update(over)
    return {k: v for k, v in rec.items() if v is not DROP}


DROP = object()


def run_preds(records: list[Any], **kw: Any):
    values = [r if isinstance(r, (bytes, type(None))) else orjson.dumps(r) for r in records]
    return decode_predictions(values, np.full(len(values), BROKER_MS, dtype=np.int64), MODELS, **{**ROUTE, **kw})


def run_labels(records: list[Any], **kw: Any):
    values = [r if isinstance(r, (bytes, type(None))) else orjson.dumps(r) for r in records]
    scanner = {"scanner": ROUTE["scanner"]} if ROUTE else {}
    return decode_labels(values, np.full(len(values), BROKER_MS, dtype=np.int64), MODELS, **{**scanner, **kw})


def xs(p: Any) -> list[float]:
    """Feature ``x`` of a group, from its raw feature objects or its typed columns."""
    return [ft["x"] for ft in p.features] if p.features is not None else p.columns.values["x"].tolist()


def only_rejection(rejected: list[Rejected]) -> Rejected:
    assert len(rejected) == 1, rejected
    return rejected[0]


# ---------------------------------------------------------------------------------- predictions

PRED_BAD = [
    (pred(prediction_id=DROP), "prediction_id", "missing"),
    (pred(model=DROP), "model", "missing"),
    (pred(features=DROP), "features", "missing"),
    (pred(prediction=DROP), "prediction", "missing"),
    (pred(prediction_id=7), "prediction_id", "number"),
    (pred(prediction_id=""), "prediction_id", "string"),
    (pred(prediction_id=None), "prediction_id", "null"),
    (pred(prediction_id=["a"]), "prediction_id", "array"),
    (pred(model=3), "model", "number"),
    (pred(model=None), "model", "null"),
    (pred(model="nope"), "unknown model", "nope"),
    (pred(features=[1, 2]), "features", "array"),
    (pred(features="x=1"), "features", "string"),
    (pred(features=None), "features", "null"),
    (pred(prediction=None), "prediction", "null"),
    (pred(prediction={"a": 1}), "prediction", "object"),
    (pred(prediction=[1]), "prediction", "array"),
    (pred(score="0.9"), "score", "'0.9'"),
    (pred(score=1.5), "score", "1.5"),
    (pred(score=-0.1), "score", "-0.1"),
    (pred(score=True), "score", "True"),
    (pred(score=[0.1]), "score", "[0.1]"),
    (pred(timestamp="yesterday"), "timestamp", "RFC 3339"),
    (pred(timestamp="2026-13-01T00:00:00Z"), "timestamp", "RFC 3339"),
    (pred(timestamp="2026-11-22T25:00:00Z"), "timestamp", "RFC 3339"),
    (pred(timestamp=""), "timestamp", "RFC 3339"),
    (pred(timestamp=True), "timestamp", "RFC 3339"),
    (pred(timestamp=[1]), "timestamp", "RFC 3339"),
    (pred(timestamp={"s": 1}), "timestamp", "RFC 3339"),
    (pred(timestamp=1_790_000_000_000_000_000), "timestamp", "RFC 3339"),  # nanoseconds: year > 9999
    (pred(timestamp=-5), "timestamp", "RFC 3339"),
    ([1, 2, 3], "array", "object"),
    ("just a string", "string", "object"),
    (None, "null", "object"),  # JSON literal null (bytes b"null"), not a null record
]


@pytest.mark.parametrize("bad, field, detail", PRED_BAD, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(PRED_BAD)])
def test_prediction_contract_violation_named_and_positioned(bad: Any, field: str, detail: str) -> None:
    good = [pred(prediction_id=f"g{i}") for i in range(3)]
    raw = orjson.dumps(bad)
    groups, rejected = run_preds([good[0], good[1], raw, good[2]])
    r = only_rejection(rejected)
    assert r.position == 2
    assert field in r.reason and detail in r.reason, r.reason
    assert groups["car-loan"].positions.tolist() == [0, 1, 3]
    assert groups["car-loan"].ids.tolist() == ["g0", "g1", "g2"]
    if isinstance(bad, dict) and isinstance(bad.get("model"), str) and bad["model"] in MODELS:
        assert r.model == bad["model"]


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "invalid JSON"),
    (b"", "invalid JSON"),
    (b'{"prediction_id": "a"', "invalid JSON"),
    (b"\xff\xfe{}", "invalid JSON"),
    (b'{"a": NaN}', "invalid JSON"),
    (None, "null value"),
])
def test_undecodable_records(raw: bytes | None, reason: str) -> None:
    for run in (run_preds, run_labels):
        groups, rejected = run([raw, pred() if run is run_preds else label()])
        r = only_rejection(rejected)
        assert (r.position, r.model) == (0, None)
        assert reason in r.reason
        assert groups["car-loan"].positions.tolist() == [1]


def test_oversize_record_rejected_before_parsing() -> None:
    big = pred(features={f"f{i}": float(i) for i in range(200)})
    raw = orjson.dumps(big)
    groups, rejected = run_preds([pred(), raw], max_bytes=len(raw) - 1)
    r = only_rejection(rejected)
    assert r.position == 1 and f"{len(raw)} bytes" in r.reason and str(len(raw) - 1) in r.reason
    groups, rejected = run_preds([pred(), raw], max_bytes=len(raw))
    assert rejected == [] and len(groups["car-loan"]) == 2


def test_valid_predictions_grouped_by_model_in_order() -> None:
    models = ["fraud", "car-loan", "fraud", "fraud", "car-loan"]
    recs = [pred(prediction_id=f"p{i}", model=m, prediction=i, score=i / 10) for i, m in enumerate(models)]
    recs.insert(2, b"garbage")
    groups, rejected = run_preds(recs)
    assert [r.position for r in rejected] == [2]
    assert list(groups) == ["fraud", "car-loan"]  # first-seen order
    f, c = groups["fraud"], groups["car-loan"]
    assert f.model == "fraud" and c.model == "car-loan"
    assert f.positions.tolist() == [0, 3, 4] and c.positions.tolist() == [1, 5]
    assert f.ids.tolist() == ["p0", "p2", "p3"] and c.ids.tolist() == ["p1", "p4"]
    assert f.prediction.tolist() == [0.0, 2.0, 3.0] and f.score.tolist() == [0.0, 0.2, 0.3]
    assert f.positions.dtype == np.int64 and f.event_s.dtype == np.float64
    assert xs(c) == [1.0, 1.0]


def test_optional_fields_and_prediction_types() -> None:
    recs = [pred(prediction_id="a", score=DROP), pred(prediction_id="b", score=None),
            pred(prediction_id="c", prediction="approve", score=DROP), pred(prediction_id="d", prediction=True, score=DROP),
            pred(prediction_id="e", prediction=3.25, score=0), pred(prediction_id="f", score=1)]
    groups, rejected = run_preds(recs)
    assert rejected == []
    p = groups["car-loan"]
    assert np.isnan(p.score[:4]).all() and p.score[4:].tolist() == [0.0, 1.0]
    assert p.prediction.dtype == object  # a string class keeps the column as objects
    assert p.prediction.tolist() == [1, 1, "approve", True, 3.25, 1]


# ---------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("ts, expected", [
    ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=timezone.utc).timestamp()),
    ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=timezone.utc).timestamp()),
    ("2026-11-22T05:30:00-04:30", datetime(2026, 11, 22, 10, tzinfo=timezone.utc).timestamp()),
    ("2026-11-22T10:00:00.250Z", datetime(2026, 11, 22, 10, tzinfo=timezone.utc).timestamp() + 0.25),
    ("2026-11-22t10:00:00z", datetime(2026, 11, 22, 10, tzinfo=timezone.utc).timestamp()),
    (1_790_000_000, 1_790_000_000.0),  # epoch seconds
    (1_790_000_000.5, 1_790_000_000.5),
    (1_790_000_000_250, 1_790_000_000.25),  # epoch milliseconds
    (0, 0.0),
    (None, BROKER_MS / 1000),  # explicit null: broker timestamp
    (DROP, BROKER_MS / 1000),  # absent: broker timestamp
])
def test_timestamps(ts: Any, expected: float) -> None:
    for run, make in ((run_preds, pred), (run_labels, label)):
        groups, rejected = run([make(timestamp=ts)])
        assert rejected == []
        assert groups["car-loan"].event_s[0] == pytest.approx(expected, abs=1e-6)


def test_mixed_timestamps_in_one_batch() -> None:
    stamps = ["2026-11-22T10:00:00Z", "bad", 1_790_000_000, None, "2026-11-22T11:00:00+01:00", 1_790_000_000_000]
    groups, rejected = run_preds([pred(prediction_id=f"p{i}", timestamp=t) for i, t in enumerate(stamps)])
    assert [r.position for r in rejected] == [1] and "timestamp" in rejected[0].reason
    assert rejected[0].model == "car-loan"
    p = groups["car-loan"]
    assert p.positions.tolist() == [0, 2, 3, 4, 5]
    t = datetime(2026, 11, 22, 10, tzinfo=timezone.utc).timestamp()
    assert p.event_s.tolist() == [t, 1_790_000_000.0, BROKER_MS / 1000, t, 1_790_000_000.0]


# ---------------------------------------------------------------------------------- labels

LABEL_BAD = [
    (label(prediction_id=DROP), "prediction_id", "missing"),
    (label(model=DROP), "model", "missing"),
    (label(label=DROP), "label", "missing"),
    (label(prediction_id=1), "prediction_id", "number"),
    (label(prediction_id=""), "prediction_id", "string"),
    (label(model=False), "model", "boolean"),
    (label(model="other"), "unknown model", "other"),
    (label(label=None), "label", "null"),
    (label(label=[0]), "label", "array"),
    (label(label={"y": 0}), "label", "object"),
    (label(timestamp="29/11/2026"), "timestamp", "RFC 3339"),
    (label(timestamp=False), "timestamp", "RFC 3339"),
    ({"x": 1}, "prediction_id", "missing"),
    (3.5, "number", "object"),
]


@pytest.mark.parametrize("bad, field, detail", LABEL_BAD, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(LABEL_BAD)])
def test_label_contract_violation_named_and_positioned(bad: Any, field: str, detail: str) -> None:
    groups, rejected = run_labels([label(prediction_id="g0"), orjson.dumps(bad), label(prediction_id="g1", model="fraud")])
    r = only_rejection(rejected)
    assert r.position == 1
    assert field in r.reason and detail in r.reason, r.reason
    assert groups["car-loan"].positions.tolist() == [0] and groups["fraud"].positions.tolist() == [2]


def test_labels_grouped_and_typed() -> None:
    recs = [label(prediction_id="a", label=1), label(prediction_id="b", model="fraud", label=0.0),
            label(prediction_id="c", label=0)]
    groups, rejected = run_labels(recs)
    assert rejected == []
    assert groups["car-loan"].ids.tolist() == ["a", "c"] and groups["car-loan"].label.tolist() == [1.0, 0.0]
    assert groups["car-loan"].label.dtype == np.float64
    groups, _ = run_labels([label(label="yes"), label(prediction_id="b", label=1)])
    assert groups["car-loan"].label.tolist() == ["yes", 1]


def test_empty_batch() -> None:
    assert run_preds([]) == ({}, [])
    assert run_labels([]) == ({}, [])


# ---------------------------------------------------------------------------------- fuzz

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
shallow_values = json_scalars | st.lists(json_scalars, max_size=2) | st.dictionaries(st.text(max_size=3), json_scalars, max_size=2)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
FIELDS = ["prediction_id", "model", "features", "prediction", "score", "timestamp", "label"]


@st.composite
def near_valid(draw: st.DrawFn, make: Any) -> Any:
    rec = make(prediction_id=draw(st.text(min_size=1, max_size=6)), model=draw(st.sampled_from(sorted(MODELS))))
    action = draw(st.sampled_from(["keep", "drop", "mutate", "add"]))
    key = draw(st.sampled_from(FIELDS))
    if action == "drop":
        rec.pop(key, None)
    elif action == "mutate":
        rec[key] = draw(json_values)
    elif action == "add":
        rec[draw(st.text(max_size=8))] = draw(json_values)
    return rec


def record_bytes(make: Any) -> st.SearchStrategy[bytes | None]:
    as_json = (json_values | near_valid(make)).map(orjson.dumps)
    return st.none() | st.binary(max_size=40) | as_json


def check_partition(n: int, groups: dict, rejected: list[Rejected]) -> None:
    seen = [r.position for r in rejected] + [int(i) for g in groups.values() for i in g.positions]
    assert sorted(seen) == list(range(n))
    assert [r.position for r in rejected] == sorted(r.position for r in rejected)
    for model, g in groups.items():
        assert model in MODELS and g.model == model
        assert np.all(np.diff(g.positions) > 0)
        assert len(g.ids) == len(g.event_s) == len(g.positions) and np.isfinite(g.event_s).all()
        assert all(type(i) is str and i for i in g.ids)
    for r in rejected:
        assert isinstance(r.reason, str) and r.reason
        assert r.model is None or isinstance(r.model, str)


FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.lists(record_bytes(pred), max_size=12))
def test_fuzz_predictions_partition_the_batch(values: list[bytes | None]) -> None:
    groups, rejected = decode_predictions(values, np.arange(len(values), dtype=np.int64), MODELS, max_bytes=300,
                                          **ROUTE)
    check_partition(len(values), groups, rejected)
    for g in groups.values():
        s = g.score[~np.isnan(g.score)]
        assert ((s >= 0) & (s <= 1)).all()
        if g.features is None:  # typed columns: one value per record in every column
            assert all(len(v) == len(g) for v in g.columns.values.values())
            continue
        assert len(g.features) == len(g) and all(isinstance(f, dict) for f in g.features)
        extract_features(g.features, ["x"], ["c"])  # whatever the features hold, never raises


@FUZZ
@given(st.lists(record_bytes(label), max_size=12))
def test_fuzz_labels_partition_the_batch(values: list[bytes | None]) -> None:
    groups, rejected = decode_labels(values, np.arange(len(values), dtype=np.int64), MODELS,
                                     scanner=ROUTE.get("scanner"))
    check_partition(len(values), groups, rejected)


# ---------------------------------------------------------------------------------- features


def test_extract_features_missing_null_type_unexpected_counted_exactly() -> None:
    feats = [
        {"x": 1.5, "n": 3, "c": "a", "d": "p"},
        {"x": None, "n": 2.0, "c": None, "d": "q", "extra": 1},           # nulls are not missing
        {"n": 1, "c": "b", "extra": 2, "more": None},                      # x missing, d missing
        {"x": "1.5", "n": True, "c": 7, "d": 2.5},                         # type errors x, n; numbers stringified
        {"x": [1], "n": {"v": 1}, "c": {"k": 1}, "d": ["p"], "extra": 3},  # containers: type errors everywhere
        {"x": False, "n": 0, "c": True, "d": "p"},
    ]
    fc = extract_features(feats, ["x", "n"], ["c", "d"])
    nan = math.nan
    np.testing.assert_array_equal(fc.values["x"], [1.5, nan, nan, nan, nan, nan])
    np.testing.assert_array_equal(fc.values["n"], [3.0, 2.0, 1.0, nan, nan, 0.0])
    assert fc.values["x"].dtype == np.float64 and fc.values["n"].dtype == np.float64
    assert fc.values["c"].tolist() == ["a", None, "b", "7", None, "True"]
    assert fc.values["d"].tolist() == ["p", "q", None, "2.5", None, "p"]
    assert all(type(v) is str for v in fc.values["c"] if v is not None)
    assert fc.missing["x"].tolist() == [False, False, True, False, False, False]
    assert fc.missing["d"].tolist() == [False, False, True, False, False, False]
    assert not fc.missing["n"].any() and not fc.missing["c"].any()
    assert fc.type_errors["x"].tolist() == [False, False, False, True, True, True]  # booleans are not numbers
    assert fc.type_errors["n"].tolist() == [False, False, False, True, True, False]
    assert fc.type_errors["c"].tolist() == [False, False, False, False, True, False]
    assert fc.type_errors["d"].tolist() == [False, False, False, False, True, False]
    assert fc.unexpected == {"extra": 3, "more": 1}


@pytest.mark.parametrize("numeric, categorical", [(["x"], []), ([], ["c"])])
def test_extract_features_single_feature(numeric: list[str], categorical: list[str]) -> None:
    feats = [{"x": 2, "c": "a"}, {"y": 1}, {"x": None, "c": None}, {"x": "s", "c": 5}]
    fc = extract_features(feats, numeric, categorical)
    name = (numeric + categorical)[0]
    assert fc.missing[name].tolist() == [False, True, False, False]
    if numeric:
        np.testing.assert_array_equal(fc.values["x"], [2.0, math.nan, math.nan, math.nan])
        assert fc.type_errors["x"].tolist() == [False, False, False, True]
        assert fc.unexpected == {"c": 3, "y": 1}
    else:
        assert fc.values["c"].tolist() == ["a", None, None, "5"]
        assert not fc.type_errors["c"].any()
        assert fc.unexpected == {"x": 3, "y": 1}


def test_extract_features_all_present_fast_path_and_empty() -> None:
    feats = [{"x": float(i), "c": str(i % 3)} for i in range(50)]
    fc = extract_features(feats, ["x"], ["c"])
    np.testing.assert_array_equal(fc.values["x"], np.arange(50.0))
    assert not fc.missing["x"].any() and not fc.type_errors["x"].any() and fc.unexpected == {}
    fc = extract_features([], ["x"], ["c"])
    assert fc.values["x"].shape == (0,) and fc.values["c"].shape == (0,) and fc.unexpected == {}
    fc = extract_features([{"a": 1}, {}], [], [])
    assert fc.values == {} and fc.unexpected == {"a": 1}


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["x", "n", "c", "z"]), shallow_values, max_size=4), max_size=10))
def test_fuzz_extract_features_counts(feats: list[dict[str, Any]]) -> None:
    fc = extract_features(feats, ["x", "n"], ["c"])
    for name in ("x", "n", "c"):
        present = [name in f for f in feats]
        assert fc.missing[name].tolist() == [not p for p in present]
        assert not (fc.missing[name] & fc.type_errors[name]).any()
    for name in ("x", "n"):
        ok_type = [name in f and (f[name] is None or type(f[name]) in (int, float)) for f in feats]
        assert fc.type_errors[name].tolist() == [name in f and not ok for f, ok in zip(feats, ok_type)]
        expect = [float(f[name]) if ok and f[name] is not None else math.nan for f, ok in zip(feats, ok_type)]
        np.testing.assert_array_equal(fc.values[name], np.array(expect, dtype=float))
    assert fc.unexpected == ({"z": n} if (n := sum("z" in f for f in feats)) else {})
