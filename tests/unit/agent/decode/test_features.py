"""Typed per-model feature decoding (agent.decode.features.TypedFeatures) against the dict route
(extract_features): whatever a batch holds, both give the same columns, masks and counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.decode import decode_predictions
from agent.decode.features import FeatureSpec, TypedFeatures, extract_features

SPECS = {"a": FeatureSpec(("x", "y"), ("c",), ("seg",)), "b": FeatureSpec(("z",), (), ())}
TYPED = TypedFeatures(SPECS)
VALUE = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-10**6, 10**6),
                  st.booleans(), st.sampled_from(["k", "l", ""]), st.just([1]), st.just({"n": 1}))


@st.composite
def features(draw: st.DrawFn, model: str) -> dict[str, Any]:
    spec = SPECS[model]
    out: dict[str, Any] = {}
    for name in (*spec.numeric, *spec.categorical, *spec.extra):
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        if name in spec.numeric and draw(st.booleans()):
            out[name] = draw(st.floats(-1e6, 1e6, allow_nan=False))  # mostly clean
        elif name in spec.categorical and draw(st.booleans()):
            out[name] = draw(st.sampled_from(["k", "l"]))
        else:
            out[name] = draw(VALUE)
    if draw(st.integers(0, 7)) == 0:
        out[draw(st.sampled_from(["extra_key", "x2", "c"]))] = draw(VALUE)  # unexpected (or a dup name)
    return out


@st.composite
def batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 12))
    recs = []
    for i in range(n):
        model = draw(st.sampled_from(["a", "b"]))
        recs.append({"prediction_id": f"p{i}", "model": model, "features": draw(features(model)),
                     "prediction": 1, "score": 0.5})
    return recs


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(np.array_equal(a.astype(float), b.astype(float), equal_nan=True))
    return a.tolist() == b.tolist()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch())
def test_typed_route_equals_dict_route(records: list[dict[str, Any]]) -> None:
    values = [orjson.dumps(r) for r in records]
    ms = np.zeros(len(values), dtype=np.int64)
    typed, rej_t = decode_predictions(values, ms, set(SPECS), typed=TYPED)
    plain, rej_p = decode_predictions(values, ms, set(SPECS))
    assert rej_t == rej_p and set(typed) == set(plain)
    for model, p in plain.items():
        spec = SPECS[model]
        want = extract_features(p.features or [], spec.numeric, spec.categorical, spec.extra)
        got = typed[model].columns
        assert got is not None and typed[model].features is None
        for attr in ("values", "missing", "type_errors", "extra"):
            w, g = getattr(want, attr), getattr(got, attr)
            assert set(w) == set(g), attr
            for k in w:
                assert _same(w[k], g[k]), (attr, k, w[k], g[k])
        assert want.unexpected == got.unexpected
        np.testing.assert_array_equal(typed[model].ids, p.ids)


def test_clean_batch_takes_the_strict_route_and_keeps_order() -> None:
    recs = [{"prediction_id": f"p{i}", "model": "a", "prediction": 0,
             "features": {"x": float(i), "y": i, "c": "k", "seg": "s"}} for i in range(5)]
    recs[2]["features"]["x"] = None  # one nullable record in the middle
    recs[3]["features"]["extra_key"] = 1  # one dict-route record
    got, rejected = decode_predictions([orjson.dumps(r) for r in recs], np.zeros(5, dtype=np.int64), {"a"},
                                       typed=TYPED)
    cols = got["a"].columns
    assert not rejected and cols is not None
    np.testing.assert_array_equal(cols.values["x"], [0.0, 1.0, np.nan, 3.0, 4.0])
    np.testing.assert_array_equal(cols.values["y"], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert cols.values["y"].dtype == np.float64 and cols.extra["seg"].tolist() == ["s"] * 5
    assert cols.unexpected == {"extra_key": 1}
    assert type(TYPED.decode(orjson.dumps(recs[0]))) in TYPED.strict
    assert type(TYPED.decode(orjson.dumps(recs[2]))) in TYPED.nullable
