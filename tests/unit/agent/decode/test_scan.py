"""The native record scanner (agent/decode/_scan.c via agent.decode.scanner): it accepts only what it fully
understands, and wherever it accepts a record the batch decodes exactly as the msgspec/dict
route decodes it (checked on fuzzed, hand-spelled JSON, not only on what orjson writes)."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.decode import _scan  # a missing build fails here: the scanner is part of the product
from tests.fuzz._compare import _equal  # one comparison for these tests and the fuzz drivers
from tests.support.decode import decode_labels, decode_predictions
from agent.decode.features import FeatureSpec, TypedFeatures
from agent.decode.scanner import NATIVE, RecordScanner

SPECS = {"a": FeatureSpec(("x", "y"), ("c",), ("seg",)), "b": FeatureSpec(("z",), ("k",), ())}
TYPED = TypedFeatures(SPECS)
SCANNER = RecordScanner(SPECS)
KNOWN = set(SPECS)
MS = 1_790_000_000_123


def test_native_scanner_is_built() -> None:
    assert NATIVE and _scan.Scanner is not None


# ------------------------------------------------------------------------------ numbers


@settings(max_examples=1500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_conversion_equals_python_on_every_double(x: float) -> None:
    for token in (repr(x), f"{x:.17g}", f"{x:e}", f"{x:.3E}"):
        token = token.replace("inf", "")
        if not token or "n" in token:
            continue
        if token.startswith("+") or "." in token and token.split(".")[0].lstrip("-") == "":
            continue
        # an integer token reads as msgspec reads it into a float field: float(int) ("-0" -> 0.0)
        expected = float(int(token)) if token.lstrip("-").isdigit() else float(token)
        got = _scan.parse_number(token.encode())
        if not math.isfinite(expected):  # a rounded spelling past the largest double
            assert got is None
            continue
        assert got is not None and struct.pack("d", got) == struct.pack("d", expected), token


@settings(max_examples=1000, deadline=None)
@given(st.integers(-(10**30), 10**30), st.integers(0, 25), st.integers(-330, 330))
def test_number_conversion_of_decimal_spellings(mantissa: int, frac: int, exp: int) -> None:
    digits = str(abs(mantissa))
    if frac and len(digits) > frac:
        digits = digits[:-frac] + "." + digits[-frac:]
    token = ("-" if mantissa < 0 else "") + digits + (f"e{exp}" if exp % 3 == 0 else "")
    expected = float(int(token)) if token.lstrip("-").isdigit() else float(token)
    got = _scan.parse_number(token.encode())
    if not math.isfinite(expected):
        assert got is None  # out of double range: the exact route decides
    else:
        assert got is not None and struct.pack("d", got) == struct.pack("d", expected), token


@pytest.mark.parametrize("token", [b"01", b"-01", b"1.", b".5", b"+1", b"1e", b"1e+", b"-", b"", b"NaN", b"Infinity",
                                   b"0x10", b"1.5.3", b"1e5.5", b"--1", b"1e400", b"-1e400"])
def test_number_grammar_is_strict_json(token: bytes) -> None:
    assert _scan.parse_number(token) is None


def test_integer_minus_zero_reads_as_msgspec_does() -> None:
    # msgspec decodes the integer token "-0" as int 0 (so 0.0); "-0.0" keeps its sign
    assert math.copysign(1.0, _scan.parse_number(b"-0")) == 1.0
    assert math.copysign(1.0, _scan.parse_number(b"-0.0")) == -1.0


# ------------------------------------------------------------------------------ what it takes


def pred(i: int = 0, model: str = "a", **over: Any) -> dict[str, Any]:
    feats = {"x": 0.5 + i, "y": -2, "c": "k1", "seg": "north"} if model == "a" else {"z": 1e-3, "k": "p"}
    rec = {"prediction_id": f"p{i}", "model": model, "model_version": "3", "timestamp": 1_790_000_000.25 + i,
           "features": feats, "prediction": 1, "score": 0.75}
    rec.update(over)
    return rec


def scan(values: list[bytes | None], labels: bool = False) -> np.ndarray:
    return SCANNER.scan(values, 1 << 20, labels).ok


def test_clean_records_of_every_accepted_shape_are_scanned() -> None:
    recs = [
        orjson.dumps(pred(0)),
        orjson.dumps(pred(1, model="b")),
        orjson.dumps(pred(2, timestamp="2026-11-22T10:00:00Z")),
        orjson.dumps(pred(3, timestamp=None)),
        orjson.dumps({k: v for k, v in pred(4).items() if k not in ("timestamp", "score", "model_version")}),
        orjson.dumps(pred(5, prediction=True, score=None, scores=None)),
        orjson.dumps(pred(6, features={"seg": None, "c": None, "y": None, "x": 1})),  # any key order, nulls
        orjson.dumps(pred(7, features={"x": 1, "y": 2, "c": "é ü"})),  # extra key absent; non-ASCII category
        b' \n{ "model":"a", "features" : {"x":1E2,"y":-0.0,"c":"k","seg":7} ,"prediction_id":"p8",'
        b'"prediction":2.5e-1, "extra": {"nested": [1, {"a": null}], "t": true}}\t',
        orjson.dumps(pred(9, prediction_id="ид-9")),
        orjson.dumps(pred(10, timestamp=1_790_000_000_250)),  # epoch milliseconds
        orjson.dumps(pred(11, model_version="v2-é", note={"ключ": ["значение"]})),  # non-ASCII, skipped
    ]
    assert scan(recs).all()


@pytest.mark.parametrize("raw", [
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k\\u00e9"},"prediction":1}',  # escape
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k","zz":1},"prediction":1}',  # unexpected key
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k","x":3},"prediction":1}',  # duplicate key
    b'{"prediction_id":"p","model":"a","features":{"x":1,"c":"k"},"prediction":1}',  # missing feature
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":5},"prediction":1}',  # number as category
    b'{"prediction_id":"p","model":"a","features":{"x":"1","y":2,"c":"k"},"prediction":1}',  # string as number
    b'{"prediction_id":"p","model":"a","features":{"x":true,"y":2,"c":"k"},"prediction":1}',  # bool as number
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k","seg":[1]},"prediction":1}',  # array extra
    b'{"prediction_id":"p","model":"zz","features":{"x":1,"y":2,"c":"k"},"prediction":1}',  # unknown model
    b'{"prediction_id":"","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1}',  # empty id
    b'{"prediction_id":7,"model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1}',  # id not a string
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":"yes"}',  # string class
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1,"scores":{"1":0.5}}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1,"score":"0.5"}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1,"timestamp":true}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1}x',  # trailing bytes
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1,"prediction":2}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1,"note":"caf\xc3"}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1,"n":{"\xff":1}}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"\xff"},"prediction":1}',  # invalid UTF-8
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":9007199254740993}',
    b'{"prediction_id":"p","model":"a","features":{"x":1e999,"y":2,"c":"k"},"prediction":1}',
    b'{"prediction_id":"p","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1',  # truncated
    b'[1, 2]', b'null', b'', b'{}',
])
def test_anything_unusual_is_left_to_the_exact_route(raw: bytes) -> None:
    assert not scan([raw]).any()


def test_features_before_model_need_a_single_model() -> None:
    raw = b'{"prediction_id":"p","features":{"z":1,"k":"q"},"model":"b","prediction":1}'
    assert not scan([raw]).any()  # two models: which layout to read is unknown at "features"
    one = RecordScanner({"b": SPECS["b"]})
    assert one.scan([raw], 1 << 20).ok.all()
    other = b'{"prediction_id":"p","features":{"z":1,"k":"q"},"model":"zz","prediction":1}'
    assert not one.scan([other], 1 << 20).ok.any()


def test_oversize_and_non_bytes_records_are_left() -> None:
    raw = orjson.dumps(pred(0))
    assert SCANNER.scan([raw, None], len(raw)).ok.tolist() == [True, False]
    assert SCANNER.scan([raw], len(raw) - 1).ok.tolist() == [False]
    assert SCANNER.scan([bytearray(raw), memoryview(raw)], 1 << 20).ok.tolist() == [False, False]


def test_category_cache_holds_many_distinct_values_correctly() -> None:
    recs = [orjson.dumps(pred(i, features={"x": 1.0, "y": 2.0, "c": f"cat{i % 700}", "seg": f"s{i % 3}"}))
            for i in range(3000)]
    for _ in range(2):  # the second pass reads through the filled cache
        got, rejected = decode_predictions(recs, np.full(3000, MS), KNOWN, typed=TYPED, scanner=SCANNER)
        assert not rejected
        assert got["a"].columns.values["c"].tolist() == [f"cat{i % 700}" for i in range(3000)]
        assert got["a"].columns.extra["seg"].tolist() == [f"s{i % 3}" for i in range(3000)]


def test_repeated_scans_do_not_leak() -> None:
    import tracemalloc

    recs = [orjson.dumps(pred(i)) for i in range(2000)] + [b"garbage", orjson.dumps(pred(1, model="zz"))]
    ms = np.full(len(recs), MS)
    for _ in range(3):
        decode_predictions(recs, ms, KNOWN, typed=TYPED, scanner=SCANNER)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(30):
        decode_predictions(recs, ms, KNOWN, typed=TYPED, scanner=SCANNER)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 200_000, grown  # 30 x 2,000 records: a per-record leak would be megabytes


# ------------------------------------------------------------------------------ equivalence

WS = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])
CLEAN_NUMBERS = st.one_of(
    st.floats(-1e12, 1e12, allow_nan=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**15), 10**15).map(str),
    st.sampled_from(["0", "-0", "-0.0", "1E3", "1e-7", "2.5E+2", "0.000001234", "123456789012345678901234", "1e-400"]),
)
ODD_NUMBERS = st.sampled_from(["1e400", "01", "1.", ".5", "+1", "NaN", "17.", "9007199254740993", "-", "1e",
                               # hostile: beyond a double, thousands of digits, long leading zeros, underflow
                               "1" + "0" * 309, "-" + "9" * 400, "7" * 5000, "0." + "0" * 200 + "1e1000", "-1e-400",
                               "0." + "0" * 130 + "15", "123456789012345678901234567890", "Infinity", "-Infinity"])
CLEAN_STRINGS = st.one_of(st.sampled_from(['"k1"', '"k2"', '"é ü"', '"north"', '"p"', '"a1"', '"b2"']),
                          st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters='"\\'),
                                  min_size=1, max_size=6).map(lambda t: f'"{t}"'))
ODD_STRINGS = st.one_of(st.sampled_from(['"k\\u00e9"', '"k\\"q"', '""', '"\\ud800"', '"a\\nb"']),
                        st.text(max_size=6).map(lambda t: orjson.dumps(t).decode()))
ODD_OTHER = st.sampled_from(["null", "true", "false", "[]", "[1, 2]", '{"n": 1}', '{"a": [null]}', "nul", "tru"])
ODD_VALUES = st.one_of(ODD_NUMBERS, ODD_STRINGS, ODD_OTHER, CLEAN_NUMBERS, CLEAN_STRINGS)


def mostly(draw: st.DrawFn, clean: st.SearchStrategy[str], odd: st.SearchStrategy[str] = ODD_VALUES,
           p_odd: int = 8) -> str:
    """A clean token, or (about 1 in ``p_odd``) anything, so most records stay scannable."""
    return draw(odd) if draw(st.integers(0, p_odd - 1)) == 0 else draw(clean)


def obj(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> str:
    parts = [f"{draw(WS)}{orjson.dumps(k).decode()}{draw(WS)}:{draw(WS)}{v}{draw(WS)}" for k, v in pairs]
    return "{" + ",".join(parts) + "}"


def maybe_shuffle(draw: st.DrawFn, pairs: list[tuple[str, str]], one_in: int = 4) -> list[tuple[str, str]]:
    return draw(st.permutations(pairs)) if draw(st.integers(0, one_in - 1)) == 0 else pairs


@st.composite
def feature_text(draw: st.DrawFn, model: str) -> str:
    spec = SPECS.get(model, SPECS["a"])
    pairs = []
    for name in (*spec.numeric, *spec.categorical, *spec.extra):
        if draw(st.integers(0, 29)) == 0:
            continue  # missing
        null = st.just("null")
        if name in spec.numeric:
            pairs.append((name, mostly(draw, st.one_of(CLEAN_NUMBERS, null), p_odd=12)))
        else:
            pairs.append((name, mostly(draw, st.one_of(CLEAN_STRINGS, null), p_odd=12)))
    if draw(st.integers(0, 29)) == 0:
        pairs.append((draw(st.sampled_from(["x", "zz", "c"])), draw(ODD_VALUES)))  # unexpected or duplicate
    return obj(draw, maybe_shuffle(draw, pairs, 2))


@st.composite
def prediction_text(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.integers(0, 39))
    if kind == 0:
        return None
    if kind == 1:
        return draw(st.binary(max_size=30))
    model = draw(st.sampled_from(["a", "a", "a", "b", "b", "zz"]))
    ordered = draw(st.integers(0, 5)) > 0  # "model" before "features" (else two models: left to msgspec)
    pairs = [("prediction_id", mostly(draw, st.integers(0, 99).map(lambda i: f'"p{i}"'))),
             ("model", orjson.dumps(model).decode()),
             ("features", draw(feature_text(model))),
             ("prediction", mostly(draw, st.sampled_from(["0", "1", "true", "false", "0.25", "-3", "2e1"])))]
    optional = (("timestamp", st.sampled_from(["1790000000.5", "1790000000250", "null", '"2026-11-22T10:00:00Z"',
                                               '"2026-11-22t10:00:00z"', '"bad"', "-5", "1e20"])),
                ("score", st.sampled_from(["0.5", "0", "1", "null", "1.5", "-0.1", "1e-3"])),
                ("scores", st.sampled_from(["null"] * 5 + ['{"0": 0.5, "1": 0.5}'])),
                ("model_version", CLEAN_STRINGS), ("other", st.one_of(CLEAN_NUMBERS, CLEAN_STRINGS, ODD_OTHER)))
    for key, clean in optional:
        if draw(st.integers(0, 2)) == 0:
            pairs.append((key, mostly(draw, clean)))
    if draw(st.integers(0, 24)) == 0:
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))  # a required field missing
    if draw(st.integers(0, 24)) == 0:
        pairs.append(draw(st.sampled_from(pairs)))  # a duplicate field
    text = draw(WS) + obj(draw, pairs if ordered else draw(st.permutations(pairs))) + draw(WS)
    if draw(st.integers(0, 24)) == 0:
        text += draw(st.sampled_from(["x", "}", ",", " 1"]))
    if draw(st.integers(0, 24)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


@st.composite
def label_text(draw: st.DrawFn) -> bytes | None:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.one_of(st.none(), st.binary(max_size=20)))
    pairs = [("prediction_id", mostly(draw, st.integers(0, 99).map(lambda i: f'"p{i}"'))),
             ("model", mostly(draw, st.sampled_from(['"a"', '"b"', '"zz"']))),
             ("label", mostly(draw, st.sampled_from(["0", "1", "true", "false", "0.5", "2"]),
                              st.one_of(ODD_VALUES, st.just('"yes"'))))]
    if draw(st.booleans()):
        pairs.append(("timestamp", mostly(draw, st.sampled_from(["1790000000.5", "null", '"2026-11-22T10:00:00Z"']))))
    if draw(st.integers(0, 15)) == 0:
        pairs.append(("prediction_id", '"dup"'))
    return (draw(WS) + obj(draw, maybe_shuffle(draw, pairs, 2)) + draw(WS)).encode()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(st.lists(prediction_text(), min_size=1, max_size=14))
def test_native_route_decodes_predictions_exactly_as_the_exact_route(values: list[bytes | None]) -> None:
    ms = np.arange(len(values), dtype=np.int64) + MS
    native, rej_n = decode_predictions(values, ms, KNOWN, 4096, typed=TYPED, scanner=SCANNER)
    exact, rej_e = decode_predictions(values, ms, KNOWN, 4096, typed=TYPED)
    assert rej_n == rej_e
    assert list(native) == list(exact)
    for model, e in exact.items():
        n = native[model]
        for attr in ("positions", "ids", "event_s", "prediction", "score"):
            assert _equal(getattr(n, attr), getattr(e, attr)), attr
        assert n.scores == e.scores and n.features is None and e.features is None
        for attr in ("values", "missing", "type_errors", "extra"):
            want, got = getattr(e.columns, attr), getattr(n.columns, attr)
            assert set(want) == set(got)
            for k in want:
                assert _equal(got[k], want[k]), (attr, k, got[k], want[k])
        assert n.columns.unexpected == e.columns.unexpected


@FUZZ
@given(st.lists(label_text(), min_size=1, max_size=14))
def test_native_route_decodes_labels_exactly_as_the_exact_route(values: list[bytes | None]) -> None:
    ms = np.arange(len(values), dtype=np.int64) + MS
    native, rej_n = decode_labels(values, ms, KNOWN, scanner=SCANNER)
    exact, rej_e = decode_labels(values, ms, KNOWN)
    assert rej_n == rej_e and list(native) == list(exact)
    for model, e in exact.items():
        for attr in ("positions", "ids", "event_s", "label"):
            assert _equal(getattr(native[model], attr), getattr(e, attr)), attr


def test_the_fuzzed_batches_exercise_both_routes() -> None:
    """The equivalence above means something only if fuzzed batches mix records the scanner
    takes with records it leaves: such a batch must be easy to find."""
    from hypothesis import find

    def mixed(values: list[bytes | None]) -> bool:
        ok = SCANNER.scan(values, 4096).ok
        return int(ok.sum()) >= 3 and int((~ok).sum()) >= 3

    no_shrink = settings(max_examples=300, database=None, phases=[Phase.generate])
    find(st.lists(prediction_text(), min_size=14, max_size=14), mixed, settings=no_shrink)
    find(st.lists(label_text(), min_size=14, max_size=14),
         lambda v: 3 <= int(SCANNER.scan(v, 4096, labels=True).ok.sum()) <= 11, settings=no_shrink)
