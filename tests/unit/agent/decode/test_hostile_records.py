"""No record can stop the agent: regression tests for what a fuzzing and sanitizer run found.

Each hostile record is decoded by both routes (native scanner first, and the msgspec/exact route
alone): both reject it with the field named, keep its neighbours, and agree on dtypes and values.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.decode.decoder import Decoder
from agent.decode import _scan
from agent.ingest.broker import RecordBatch
from agent.config import build_config
from agent.state.counters import Counters
from tests.support.decode import decode_labels, decode_predictions
from agent.decode.features import FeatureSpec, TypedFeatures
from agent.monitor.model import ModelMonitor
from agent.pipeline import Pipeline
from agent.monitor.reference import ModelReference
from agent.decode.scanner import RecordScanner

SPECS = {"m": FeatureSpec(("x", "y"), ("c",))}
TYPED = TypedFeatures(SPECS)
SCANNER = RecordScanner(SPECS)
KNOWN = set(SPECS)
MS = 1_790_000_000_000
ROUTES = {"native": {"typed": TYPED, "scanner": SCANNER}, "exact": {"typed": TYPED}}

HUGE_INT = "1" + "0" * 309  # beyond a double: float() raises OverflowError
HOSTILE_NUMBERS = {
    "huge-int": HUGE_INT,
    "huge-negative-int": "-" + "9" * 400,
    "thousands-of-digits": "7" * 5000,  # beyond Python's int digit limit too
    "1e400": "1e400",
    "-1e400": "-1e400",
    "leading-zeros-then-huge-exponent": "0." + "0" * 99_999 + "1e1000000",  # +inf, read as 1.0 before
}


def good(i: int) -> dict[str, Any]:
    return {"prediction_id": f"g{i}", "model": "m", "timestamp": 1_790_000_000 + i,
            "features": {"x": 0.5, "y": -1.0, "c": "k"}, "prediction": 1, "score": 0.25}


def with_token(field: str, token: str) -> bytes:
    """A prediction record whose ``field`` holds the raw number ``token`` (spliced into the text)."""
    rec = good(9)
    marker = 123.0  # a value no other field holds
    if field.startswith("features."):
        rec["features"][field.split(".", 1)[1]] = marker
    else:
        rec[field] = marker
    return orjson.dumps(rec).replace(b"123.0", token.encode())


def run(values: list[bytes | None], route: str, labels: bool = False) -> tuple[dict[str, Any], list[Any]]:
    ms = np.full(len(values), MS, dtype=np.int64)
    if labels:
        return decode_labels(values, ms, KNOWN, scanner=ROUTES[route].get("scanner"))
    return decode_predictions(values, ms, KNOWN, **ROUTES[route])


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("field", ["features.x", "prediction", "score", "timestamp"])
@pytest.mark.parametrize("name", HOSTILE_NUMBERS)
def test_numbers_beyond_a_double_reject_the_record_naming_the_field(route: str, field: str, name: str) -> None:
    values = [orjson.dumps(good(0)), with_token(field, HOSTILE_NUMBERS[name]), orjson.dumps(good(2))]
    groups, rejected = run(values, route)
    assert [r.position for r in rejected] == [1]
    reason = rejected[0].reason
    assert f"'{field}'" in reason or "invalid JSON" in reason and name == "thousands-of-digits", reason
    assert groups["m"].positions.tolist() == [0, 2]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", HOSTILE_NUMBERS)
def test_label_numbers_beyond_a_double(route: str, name: str) -> None:
    ok = orjson.dumps({"prediction_id": "a", "model": "m", "label": 1})
    bad = b'{"prediction_id": "b", "model": "m", "label": ' + HOSTILE_NUMBERS[name].encode() + b"}"
    groups, rejected = run([ok, bad], route, labels=True)
    assert [r.position for r in rejected] == [1]
    assert "'label'" in rejected[0].reason or "invalid JSON" in rejected[0].reason
    assert groups["m"].positions.tolist() == [0]


@pytest.mark.parametrize("route", ROUTES)
def test_in_range_spellings_of_numbers_agree_bit_for_bit(route: str) -> None:
    tokens = ["-1e-400", "123456789012345678901234567890", "0." + "0" * 130 + "15", "9" * 300,
              "1" + "0" * 200 + "e-100"]
    values = [with_token("features.x", t) for t in tokens]
    groups, rejected = run(values, route)
    assert rejected == []
    got = groups["m"].columns.values["x"]
    want = [float(t) for t in tokens]
    assert [struct.pack("d", g) for g in got.tolist()] == [struct.pack("d", w) for w in want]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 160), st.integers(1, 10**6), st.integers(-400, 400))
def test_long_number_tokens_convert_as_python_float_does(zeros: int, digits: int, exp: int) -> None:
    """Tokens around and beyond 128 characters: the scanner leaves the long ones, and the value
    that comes out of either route is Python's float() of the token, or a rejection when that
    is infinite."""
    token = f"0.{'0' * zeros}{digits}e{exp}"
    expected = float(token)
    native = _scan.parse_number(token.encode())
    if len(token) >= 128:
        assert native is None  # left to the exact route
    elif math.isfinite(expected):
        assert native is not None and struct.pack("d", native) == struct.pack("d", expected), token
    for route in ROUTES:
        groups, rejected = run([with_token("features.x", token)], route)
        if math.isfinite(expected):
            assert rejected == [], (route, token)
            assert struct.pack("d", float(groups["m"].columns.values["x"][0])) == struct.pack("d", expected)
        else:
            assert len(rejected) == 1 and "'features.x'" in rejected[0].reason


@pytest.mark.parametrize("raw, reason", [
    (b'{"prediction_id": "a", "model": "m", "features": {"x": NaN}, "prediction": 1}', "invalid JSON"),
    (b'{"prediction_id": "a", "model": "m", "features": {"x": Infinity}, "prediction": 1}', "invalid JSON"),
    (b'{"prediction_id": "a", "model": "m", "features": {"x": -Infinity}, "prediction": 1}', "invalid JSON"),
    (b'{"prediction_id": "\\ud800", "model": "m", "features": {}, "prediction": 1}', "invalid JSON"),
    (b'{"prediction_id": "a", "model": "m", "features": {"c": "\\udfff' + b"9" * 130 + b'"}, "prediction": 1}',
     "surrogate"),
    (b'{"prediction_id": "a", "model": "m", "features": ' + b"[" * 100_000 + b"]" * 100_000 + b', "prediction": 1}',
     "invalid JSON"),
    (b'{"prediction_id": "a", "model": "m", "features": {"x": ' + b"[" * 5000 + b"1" * 200 + b"]" * 5000
     + b'}, "prediction": 1}', "nested too deeply"),
])
@pytest.mark.parametrize("route", ROUTES)
def test_malformed_tokens_and_structures_are_rejected(route: str, raw: bytes, reason: str) -> None:
    groups, rejected = run([orjson.dumps(good(0)), raw], route)
    assert [r.position for r in rejected] == [1]
    assert reason in rejected[0].reason, rejected[0].reason
    assert groups["m"].positions.tolist() == [0]


# ---------------------------------------------------------------------- classes of mixed types


@pytest.mark.parametrize("route", ROUTES)
def test_mixed_class_types_in_one_batch_decode_alike(route: str) -> None:
    """One string prediction makes the column an object array; every other row is still the
    float the scanner writes (1.0 for 1 and for true), not Python's 1 or True."""
    preds = [good(0) | {"prediction": 1}, good(1) | {"prediction": True}, good(2) | {"prediction": "2"},
             good(3) | {"prediction": 0.0}, good(4) | {"prediction": False}]
    groups, rejected = run([orjson.dumps(p) for p in preds], route)
    assert rejected == []
    col = groups["m"].prediction
    assert col.dtype == object
    assert [(type(v), v) for v in col.tolist()] == [(float, 1.0), (float, 1.0), (str, "2"), (float, 0.0), (float, 0.0)]


def frame(n: int, seed: int, classes: list[Any]) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = rng.choice(classes, n)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "c": rng.choice(["k", "j"], n),
                         "target": y, "pred": y})


def monitor(tmp_path: Path, classes: list[Any]) -> ModelMonitor:
    ref = tmp_path / "ref.parquet"
    frame(2000, 1, classes).to_parquet(ref)
    cfg = build_config({"models": {"m": {"task": "multiclass_classification", "reference": str(ref),
                                         "target": "target", "prediction": "pred", "features": ["x", "y", "c"],
                                         "window": {"size": 10}}}})
    return ModelMonitor(ModelReference.load("m", cfg.models["m"]), Counters())


@pytest.mark.parametrize("route", ROUTES)
def test_class_codes_are_the_same_whichever_route_decoded_a_row(tmp_path: Path, route: str) -> None:
    """Classes [0, 1, 2]: a batch with one string class used to turn the scanned rows into NaN."""
    mon = monitor(tmp_path, [0, 1, 2])
    preds = [good(i) | {"prediction": p} for i, p in enumerate([2, 1, "2", True, 0, 2.0, "1", 2, 0, 1])]
    groups, rejected = run([orjson.dumps(p) for p in preds], route)
    assert rejected == []
    codes = mon.classes.encode(groups["m"].prediction)
    assert codes.tolist() == [2.0, 1.0, 2.0, 1.0, 0.0, 2.0, 1.0, 2.0, 0.0, 1.0]
    labels = [orjson.dumps({"prediction_id": f"g{i}", "model": "m", "label": v})
              for i, v in enumerate([2, "1", 0, True, "0", 2, 1, "2", 0, 1])]
    lab, rejected = run(labels, route, labels=True)
    assert rejected == []
    assert mon.classes.encode(lab["m"].label).tolist() == [2.0, 1.0, 0.0, 1.0, 0.0, 2.0, 1.0, 2.0, 0.0, 1.0]


def test_string_classes_are_named_by_their_text(tmp_path: Path) -> None:
    mon = monitor(tmp_path, ["no", "yes"])
    obj = np.array(["yes", "no", 1.0, "maybe"], dtype=object)
    assert mon.classes.encode(obj).tolist()[:2] == [1.0, 0.0]
    assert all(math.isnan(v) for v in mon.classes.encode(obj).tolist()[2:])
    assert np.isnan(mon.classes.encode(np.array([0.0, 1.0]))).all()  # a number never names a string class


# ---------------------------------------------------------------------- the scanner object


def test_scanner_init_twice_replaces_the_models_and_a_failed_init_leaves_none() -> None:
    s = _scan.Scanner((("m", ("x",), (), ()),))
    for _ in range(3):  # no leak: each init frees the previous models (checked under ASan by the fuzz run)
        s.__init__((("m", ("x",), (), ()),))
    with pytest.raises(ValueError, match="duplicate"):
        s.__init__((("m", ("x", "x"), (), ()),))
    buffers = (np.zeros(1, np.uint8), np.zeros(1, np.int32), np.zeros(1), np.zeros(1), np.zeros(1), (np.zeros((1, 1)),))
    with pytest.raises(RuntimeError, match="no models"):  # no half-built model that accepts the key ""
        s.scan([b'{"prediction_id": "a", "model": "", "features": {}, "prediction": 1}'], 1 << 20, False, *buffers)
    s.__init__((("m", ("x",), (), ()),))
    status = np.zeros(1, np.uint8)
    s.scan([b'{"prediction_id": "a", "model": "m", "features": {"x": 1}, "prediction": 1}'], 1 << 20, False,
           status, *buffers[1:])
    assert status.tolist() == [1]


# ---------------------------------------------------------------------- the invariant itself


def hostile_pipeline(tmp_path: Path) -> Pipeline:
    ref = tmp_path / "ref.parquet"
    f = frame(2000, 1, [0, 1])
    f["score"] = np.clip(f["target"] * 0.8 + 0.1, 0, 1)
    f.to_parquet(ref)
    cfg = build_config({"models": {"m": {"task": "binary_classification", "reference": str(ref), "target": "target",
                                         "prediction": "pred", "score": "score", "features": ["x", "y", "c"],
                                         "window": {"size": 50}}}})
    counters = Counters()
    return Pipeline({"m": ModelMonitor(ModelReference.load("m", cfg.models["m"]), counters)}, counters,
                    "predictions", "labels")


def batch(topic: str, values: list[bytes]) -> RecordBatch:
    n = len(values)
    return RecordBatch(topic, 0, np.arange(100, 100 + n), np.full(n, MS), [None] * n, values)


def test_a_fast_path_that_raises_falls_back_to_one_record_at_a_time(tmp_path: Path, monkeypatch: Any) -> None:
    """Fault injection (a mock, because every crash we know of is fixed and a new one cannot be
    produced on purpose): the batch routes raise, then the exact route raises on one record. The
    batch is decoded record by record; that record alone is dead-lettered with the exception and
    its offset, counted invalid; the others are windowed as usual."""
    pipe = hostile_pipeline(tmp_path)
    exact = Decoder._python_predictions

    def fast(*a: Any, **k: Any) -> Any:
        raise OverflowError("planted fast-path fault")

    def exact_or_raise(self: Decoder, values: Any, *a: Any, **k: Any) -> Any:
        if any(v and b"boom" in v for v in values):
            raise ZeroDivisionError("planted exact-route fault")
        return exact(self, values, *a, **k)

    monkeypatch.setattr(Decoder, "_native_predictions", fast)
    monkeypatch.setattr(Decoder, "_python_predictions", exact_or_raise)
    values = [orjson.dumps(good(i)) for i in range(6)]
    values[3] = orjson.dumps(good(3) | {"model_version": "boom"})
    results, dead = pipe.process([batch("predictions", values)])
    assert [d.offset for d in dead] == [103]
    assert "offset 103" in dead[0].reason and "ZeroDivisionError: planted exact-route fault" in dead[0].reason
    ev = pipe.counters.events
    assert ev[("m", "predictions", "ok")] == 5 and ev[("unknown", "predictions", "invalid")] == 1
    assert len(pipe.monitors["m"].open[0].rows.ids[:5]) == 5


def test_a_label_fast_path_that_raises_falls_back_too(tmp_path: Path, monkeypatch: Any) -> None:
    """Fault injection as above, on the label stream."""
    pipe = hostile_pipeline(tmp_path)

    def fast(*a: Any, **k: Any) -> Any:
        raise MemoryError("planted")

    monkeypatch.setattr(Decoder, "_native_labels", fast)
    labels = [orjson.dumps({"prediction_id": f"g{i}", "model": "m", "label": i % 2}) for i in range(4)]
    labels.append(b"{broken")
    pipe.process([batch("predictions", [orjson.dumps(good(i)) for i in range(4)])])
    _, dead = pipe.process([batch("labels", labels)])
    assert [d.offset for d in dead] == [104]
    assert pipe.counters.events[("m", "labels", "ok")] == 4


def test_a_window_whose_judgement_raises_is_marked_failed_and_the_agent_goes_on(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    """Fault injection (a mock: no data we know of makes the detectors raise any more): the drift
    comparison raises on the first window only."""
    pipe = hostile_pipeline(tmp_path)
    mon = pipe.monitors["m"]
    compare = type(mon.ref.drift).compare
    calls = []

    def flaky(self: Any, summaries: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise FloatingPointError("planted judgement fault")
        return compare(self, summaries)

    monkeypatch.setattr(type(mon.ref.drift), "compare", flaky)
    results, dead = pipe.process([batch("predictions", [orjson.dumps(good(i)) for i in range(100)])])
    assert dead == []
    assert [r.window_id for r in results] == [0, 1]
    assert results[0].failed == "FloatingPointError: planted judgement fault"
    assert results[0].to_dict()["failed"] == results[0].failed
    assert results[1].failed is None and results[1].drift.features
    assert pipe.counters.window_failures["m"] == 1
    # labels for the failed window are counted and the window is not judged again
    labels = [orjson.dumps({"prediction_id": f"g{i}", "model": "m", "label": 1}) for i in range(50)]
    pipe.process([batch("labels", labels)])
    again = pipe.evaluate()
    assert [r.failed for r in again if r.window_id == 0] == ["FloatingPointError: planted judgement fault"]
    assert len(calls) == 2


def test_labels_waiting_for_their_prediction_survive_a_checkpoint_as_numbers(tmp_path: Path) -> None:
    """Labels read before their predictions wait in the join; checkpointed as text, they came back
    as the text "1.0" (numpy float labels were not recognised as numbers), which names no class:
    after a restart the window counted them as labelled but left them out of performance."""
    from agent.state.checkpoint import CheckpointStore

    pipe = hostile_pipeline(tmp_path)
    labels = [orjson.dumps({"prediction_id": f"g{i}", "model": "m", "label": i % 2}) for i in range(50)]
    pipe.process([batch("labels", labels)])
    store = CheckpointStore(tmp_path / "state")
    store.save({("labels", 0): 150}, pipe.counters, pipe.monitors, {})
    again = hostile_pipeline(tmp_path)
    store.restore(store.load(), again.monitors)
    mon = again.monitors["m"]
    assert [v for v, _ in mon.pending.values()] == [float(i % 2) for i in range(50)]
    results, _ = again.process([batch("predictions", [orjson.dumps(good(i)) for i in range(50)])])
    assert again.counters.events[("m", "labels", "ok")] == 50
    assert results[0].label_coverage == 1.0 and results[0].support["all"] == 50
