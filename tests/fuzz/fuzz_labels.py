"""Fuzz agent.decode.decoder.decode_labels: the native scanner (agent/decode/_scan.c, labels mode) against
the exact Python route, on batches of hostile label records.

Input: as tests/fuzz/fuzz_predictions.py (one config byte, then up to 8 records separated by
0x1e; a part starting with 0x01 is built into a contract-shaped label record by
tests/fuzz/_provider.py, a part equal to 0x02 is a null value, any other part is raw bytes).

Checked on every input:
* no decode raises, nor falls back to decoding record by record;
* every record is in exactly one group (by position) or rejected exactly once;
* native scan == exact route: the same rejections with the same reasons, the same groups in
  the same order, every column (positions, ids, event_s, label) equal in dtype and value;
  a second scan through the same scanner == the first;
* agent.decode._scan.parse_number of every number token (and raw part) == Python's conversion.

Run: scripts/fuzz.sh, or ``python3 tests/fuzz/fuzz_labels.py tests/fuzz/corpus/fuzz_labels``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _provider  # noqa: E402
from _compare import assert_groups_equal, assert_partition  # noqa: E402

with _common.instrumented(__name__ == "__main__"):
    from agent.decode import _scan
    from agent.decode import decoder as decode_module
    from agent.decode.features import FeatureSpec

A = FeatureSpec(("x", "y"), ("c",), ("seg",))
B = FeatureSpec(("z",), ("k",), ())
N = FeatureSpec(("x",), (), ())
SPEC_SETS = ({"a": A, "b": B}, {"b": B}, {"a": A, "b": B, "n": N}, {"a": A})
ATTRS = ("positions", "ids", "event_s", "label")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    config = data[0]
    specs = SPEC_SETS[config & 3]
    values, numbers = _provider.records(data[1:], _provider.label)
    n = len(values)
    ms = _common.broker_ms(config, n)
    known = _common.known_models(config, specs)
    limit = _common.max_bytes(config)
    models = {m: specs.get(m) for m in known}
    native_dec = decode_module.Decoder(models, limit, native=True)
    exact_dec = decode_module.Decoder(models, limit, native=False)

    def run(where: str, dec: decode_module.Decoder) -> tuple[dict, list]:
        fast = ((lambda: dec._native_labels(values, ms)) if dec.route == "native"
                else (lambda: dec._python_labels(values, ms)))
        out = _common.no_fallback(decode_module.__name__, where, lambda: dec.labels(values, ms), fast)
        assert_partition(n, out[0], out[1], known, ATTRS, where)
        return out

    native, rej_native = run("native", native_dec)
    again, rej_again = run("native (second scan)", native_dec)
    exact, rej_exact = run("exact", exact_dec)

    assert rej_native == rej_exact, ("native vs exact rejections", rej_native, rej_exact)
    assert rej_again == rej_exact, ("second native vs exact rejections", rej_again, rej_exact)
    assert_groups_equal(native, exact, ATTRS, "native vs exact")
    assert_groups_equal(again, exact, ATTRS, "second native vs exact")

    _common.check_numbers(_scan.parse_number, numbers)


if __name__ == "__main__":
    import atheris

    _common.check_extensions(_scan)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
