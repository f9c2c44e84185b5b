"""Fuzz agent.decode.decoder.decode_predictions: the native scanner (agent/decode/_scan.c) against the exact
Python routes, on batches of hostile records.

Input: one config byte, then up to 8 records separated by 0x1e. A record part starting with
0x01 is built by tests/fuzz/_provider.py from its remaining bytes (a contract-shaped JSON
prediction whose tokens, key order, whitespace and defects the fuzzer picks); a part equal to
0x02 is a null Kafka value; any other part is the record's raw bytes. The config byte picks
the model specs (bits 0-1), the known models (bits 3-4), the broker timestamps (bit 5) and
max_bytes (bits 6-7).

Checked on every input:
* no decode raises, nor falls back to decoding record by record (a fast route raised);
* every record is in exactly one group (by position) or rejected exactly once;
* native scan (scanner + typed) == exact route (typed) == the untyped msgspec route: the same
  rejections with the same reasons, the same groups in the same order, every column equal in
  dtype and value (floats bit for bit), typed feature columns equal to extract_features() of
  the raw feature dicts; a second scan through the same scanner (warm caches) == the first;
* agent.decode._scan.parse_number of every number token (and raw part) == Python's conversion.

Run: scripts/fuzz.sh (sanitized build, libFuzzer options), or directly
``python3 tests/fuzz/fuzz_predictions.py tests/fuzz/corpus/fuzz_predictions -max_total_time=30``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _provider  # noqa: E402
from _compare import assert_columns_equal, assert_groups_equal, assert_partition, same_obj  # noqa: E402

with _common.instrumented(__name__ == "__main__"):
    from agent.decode import _scan
    from agent.decode import decoder as decode_module
    from agent.decode.features import FeatureSpec, extract_features

A = FeatureSpec(("x", "y"), ("c",), ("seg",))
B = FeatureSpec(("z",), ("k",), ())
N = FeatureSpec(("x",), (), ("seg",))
SPEC_SETS = ({"a": A, "b": B}, {"b": B}, {"a": A, "b": B, "n": N}, {"a": A})
RAW_SPECS = tuple({m: (s.numeric, s.categorical, s.extra) for m, s in specs.items()} for specs in SPEC_SETS)
ATTRS = ("positions", "ids", "event_s", "prediction", "score")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    config = data[0]
    v = config & 3
    specs = SPEC_SETS[v]
    values, numbers = _provider.records(data[1:], lambda p: _provider.prediction(p, RAW_SPECS[v]))
    n = len(values)
    ms = _common.broker_ms(config, n)
    known = _common.known_models(config, specs)
    limit = _common.max_bytes(config)
    models = {m: specs.get(m) for m in known}
    # fresh decoders: the scanner's category caches start empty on every input
    native_dec = decode_module.Decoder(models, limit, native=True)
    exact_dec = decode_module.Decoder(models, limit, native=False)
    plain_dec = decode_module.Decoder(dict.fromkeys(known), limit, native=False)

    def run(where: str, dec: decode_module.Decoder) -> tuple[dict, list]:
        fast = ((lambda: dec._native_predictions(values, ms)) if dec.route == "native"
                else (lambda: dec._python_predictions(values, ms, typed=True)))
        out = _common.no_fallback(decode_module.__name__, where, lambda: dec.predictions(values, ms), fast)
        assert_partition(n, out[0], out[1], known, ATTRS, where)
        return out

    native, rej_native = run("native", native_dec)
    again, rej_again = run("native (warm caches)", native_dec)
    exact, rej_exact = run("exact", exact_dec)
    plain, rej_plain = run("untyped", plain_dec)

    assert rej_native == rej_exact, ("native vs exact rejections", rej_native, rej_exact)
    assert rej_again == rej_exact, ("warm native vs exact rejections", rej_again, rej_exact)
    assert rej_plain == rej_exact, ("untyped vs exact rejections", rej_plain, rej_exact)
    assert_groups_equal(native, exact, ATTRS, "native vs exact", columns=True)
    assert_groups_equal(again, exact, ATTRS, "warm native vs exact", columns=True)
    assert_groups_equal(plain, exact, ATTRS, "untyped vs exact")
    for model, e in exact.items():
        u = plain[model]
        assert same_obj(u.scores, e.scores), ("untyped vs exact: scores", model, u.scores, e.scores)
        assert u.columns is None and u.features is not None, ("untyped route built columns", model)
        if model in specs:
            s = specs[model]
            assert e.columns is not None and e.features is None, ("typed route kept raw features", model)
            assert_columns_equal(e.columns, extract_features(u.features, s.numeric, s.categorical, s.extra),
                                 f"typed columns vs extract_features: {model}")
        else:
            assert e.columns is None and same_obj(e.features, u.features), ("untyped model's features", model)

    _common.check_numbers(_scan.parse_number, numbers)


if __name__ == "__main__":
    import atheris

    _common.check_extensions(_scan)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
