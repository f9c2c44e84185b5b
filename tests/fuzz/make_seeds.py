"""Write the seed corpora under tests/fuzz/corpus/ (deterministic; rerun after changing the
drivers' input format): ``python3 tests/fuzz/make_seeds.py``.

Each decoder seed is a config byte then records joined by 0x1e (see _provider.records); each
ECDF seed is the byte stream fuzz_ecdf's Provider reads (see fuzz_ecdf._sample / _value)."""

from __future__ import annotations

import os
import random
import struct
import sys
from typing import Callable

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _provider import Provider, label, prediction  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEP, STRUCT, NONE = b"\x1e", b"\x01", b"\x02"


def pred(pid: str = "p1", model: str = "a", feats: str | None = None, prediction: str = "1", extra: str = "") -> bytes:
    if feats is None:
        feats = '{"x":0.5,"y":-2,"c":"k1","seg":"north"}' if model == "a" else '{"z":0.001,"k":"p"}'
    return (f'{{"prediction_id":"{pid}","model":"{model}","timestamp":1790000000.25,"features":{feats},'
            f'"prediction":{prediction},"score":0.75{extra}}}').encode()


def lab(pid: str = "p1", model: str = "a", label: str = "1", extra: str = "") -> bytes:
    return f'{{"prediction_id":"{pid}","model":"{model}","label":{label},"timestamp":1790000000.5{extra}}}'.encode()


def batch(config: int, *records: bytes) -> bytes:
    return bytes([config]) + SEP.join(records)


DEEP = "[" * 500 + "]" * 500  # past the scanner's depth limit (64), below msgspec's recursion limit
BIG_INT = "1" + "0" * 308  # 309 digits: 1e308, still a double (read exactly)
HUGE_INT = "2" + "0" * 308  # 309 digits: beyond a double
LONG_ZEROS = "0." + "0" * 1000 + "1e1000000"  # +inf by Python's rules; a long token (exact route)

PREDICTIONS = {
    "valid_two_models": batch(0, pred("p1"), pred("p2", "b"), pred("p3", extra=',"model_version":"v2"')),
    "valid_string_timestamp": batch(0, pred("p1").replace(b"1790000000.25", b'"2026-11-22T10:00:00Z"'),
                                    pred("p2").replace(b"1790000000.25", b"1790000000250")),
    "int_309_digits_feature": batch(0, pred("p1", feats=f'{{"x":{BIG_INT},"y":1,"c":"k1"}}'),
                                    pred("p2", feats=f'{{"x":{HUGE_INT},"y":1,"c":"k1"}}'),
                                    pred("p3", feats=f'{{"x":1,"y":2,"c":"k1","seg":{HUGE_INT}}}')),
    "int_309_digits_prediction": batch(0, pred("p1", prediction=BIG_INT), pred("p2", prediction=HUGE_INT),
                                       pred("p3", prediction="9007199254740993")),
    "exp_1e400": batch(0, pred("p1", feats='{"x":1e400,"y":1,"c":"k1"}'), pred("p2", extra="").replace(
        b'"score":0.75', b'"score":1e400'), pred("p3", feats='{"x":1e-400,"y":-1e-400,"c":"k1"}')),
    "long_zeros_1e1000000": batch(0, pred("p1", feats=f'{{"x":{LONG_ZEROS},"y":1,"c":"k1"}}'),
                                  pred("p2", prediction=LONG_ZEROS)),
    "long_number_strings": batch(0, pred("p1", feats='{"x":1,"y":2,"c":"' + "7" * 200 + '"}'),
                                 pred("p2", feats='{"x":0.' + "0" * 126 + '15,"y":2,"c":"k"}')),
    "nan_infinity_tokens": batch(0, pred("p1", feats='{"x":NaN,"y":1,"c":"k1"}'),
                                 pred("p2", feats='{"x":Infinity,"y":-Infinity,"c":"k1"}'),
                                 pred("p3", prediction="NaN"), pred("p4").replace(b'"score":0.75', b'"score":NaN')),
    "deep_nesting": batch(0, pred("p1", extra=f',"note":{DEEP}'), pred("p2", feats=f'{{"x":1,"y":2,"c":"k","seg":{DEEP}}}'),
                          b"[" * 70 + b"]" * 70, b'{"a":' * 100 + b"1" + b"}" * 100),
    "lone_surrogate": batch(0, pred("p1", feats='{"x":1,"y":2,"c":"\\ud800"}'), pred("\\udc00"),
                            pred("p3", extra=',"note":"\\ud83d\\ude00"'), pred("p4").replace(b'"c":"k1"', b'"c":"\xed\xa0\x80"')),
    "string_and_boolean_classes": batch(0, pred("p1", prediction='"yes"'), pred("p2", prediction="true"),
                                        pred("p3", prediction="false"), pred("p4", prediction="2.5")),
    "features_before_model_one_model": batch(1, b'{"prediction_id":"p","features":{"z":1,"k":"q"},"model":"b","prediction":1}',
                                             b'{"prediction_id":"p","features":{"z":1,"k":"q"},"model":"zz","prediction":1}'),
    "escapes_duplicates_unexpected": batch(0, pred("p1", feats='{"x":1,"y":2,"c":"k\\u00e9"}'),
                                           pred("p2", feats='{"x":1,"y":2,"c":"k","x":3}'),
                                           pred("p3", feats='{"x":1,"y":2,"c":"k","zz":1}'),
                                           b'{"\\u0070rediction_id":"p4","model":"a","features":{"x":1,"y":2,"c":"k"},"prediction":1}'),
    "null_empty_garbage": batch(0, NONE, b"", b"null", b"[1, 2]", b"{}", pred("p1") + b"x", pred("p2")[:40]),
    "bad_scores_timestamps": batch(8, pred("p1").replace(b'"score":0.75', b'"score":1.5'),
                                   pred("p2", extra=',"scores":{"0":0.4,"1":0.6}'),
                                   pred("p3").replace(b"1790000000.25", b"true"),
                                   pred("p4").replace(b"1790000000.25", b'"2026-11-22t10:00:00z"'),
                                   pred("p5").replace(b"1790000000.25", b"1e20")),
    "small_max_bytes": batch(0x80, pred("p1"), pred("p2", extra=',"note":"' + "n" * 300 + '"')),
}

LABELS = {
    "valid": batch(0, lab("p1"), lab("p2", "b", "0"), lab("p3", label="0.5")),
    "string_and_boolean_labels": batch(0, lab("p1", label='"cat"'), lab("p2", label="true"), lab("p3", label="false")),
    "int_309_digits": batch(0, lab("p1", label=BIG_INT), lab("p2", label=HUGE_INT),
                               lab("p3", label="9007199254740993")),
    "exp_1e400": batch(0, lab("p1", label="1e400"), lab("p2", label="-1e400"), lab("p3", label="1e-400")),
    "long_zeros_1e1000000": batch(0, lab("p1", label=LONG_ZEROS), lab("p2")),
    "nan_infinity_tokens": batch(0, lab("p1", label="NaN"), lab("p2", label="Infinity"), lab("p3", label="-Infinity")),
    "deep_nesting": batch(0, lab("p1", extra=f',"note":{DEEP}'), b"[" * 70 + b"]" * 70),
    "lone_surrogate": batch(0, lab("\\ud800"), lab("p2", label='"\\udfff"'), lab("p3").replace(b'"label":1', b'"label":"\xed\xa0\x80"')),
    "timestamps": batch(0, lab("p1").replace(b"1790000000.5", b'"2026-11-22T10:00:00Z"'),
                        lab("p2").replace(b"1790000000.5", b"null"), lab("p3").replace(b"1790000000.5", b'"bad"'),
                        lab("p4").replace(b"1790000000.5", b"253402300800")),
    "null_empty_garbage": batch(0x20, NONE, b"", b"nul", lab("p1")[:-1], lab("p2") + b" ", lab("p3", model="zz")),
}


def structured_parts(build: Callable[[Provider], bytes], n: int, seed: int) -> list[bytes]:
    """Parts (STRUCT + provider bytes) whose built record is a valid JSON object: starting
    points deep in the contract for the fuzzer (a seeded search, so the seeds are stable)."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        part = rng.randbytes(rng.randint(20, 120)).replace(SEP, b"")
        try:
            ok = isinstance(orjson.loads(build(Provider(part))), dict)
        except orjson.JSONDecodeError:
            ok = False
        if ok:
            out.append(STRUCT + part)
    return out


SPECS = {"a": (("x", "y"), ("c",), ("seg",)), "b": (("z",), ("k",), ())}
for k in range(3):
    PREDICTIONS[f"structured_{k}"] = batch(k * 0x49 & 0x3b, *structured_parts(lambda p: prediction(p, SPECS), 4 + k, k))
    LABELS[f"structured_{k}"] = batch(k * 0x49 & 0x3b, *structured_parts(label, 4 + k, 10 + k))
PREDICTIONS["structured_with_raw"] = batch(0, *structured_parts(lambda p: prediction(p, SPECS), 3, 7), NONE, pred("p9"))


def _f(x: float) -> bytes:  # fuzz_ecdf._value kind 4: an arbitrary finite double
    return b"\x04" + struct.pack("<d", x)


def ecdf(config: int, ref: list[bytes], win: list[bytes]) -> bytes:
    """fuzz_ecdf's stream: config, len(ref) - 1, (bool, value) per value, then the window."""
    out = bytes([config, len(ref) - 1])
    out += b"".join(b"\x00" + v for v in ref)
    out += bytes([len(win) - 1]) + b"".join(b"\x00" + v for v in win)
    return out


ECDF = {
    "identical": ecdf(0, [_f(x) for x in (1.0, 2.0, 3.0)], [_f(x) for x in (1.0, 2.0, 3.0)]),
    "shifted": ecdf(2, [_f(x / 4) for x in range(20)], [_f(x / 4 + 0.5) for x in range(20)]),
    "extremes_1e300": ecdf(0, [_f(1e300), _f(-1e300), _f(0.0)], [_f(-1e300), _f(1e300), _f(1.0)]),
    "ties": ecdf(1, [_f(1.0)] * 10 + [_f(2.0)] * 5, [_f(1.0), _f(2.0)] * 4),
    "subnormals_signed_zero": ecdf(3, [_f(5e-324), _f(-0.0), _f(0.0)], [_f(-5e-324), _f(0.0), _f(1e-310)]),
    "disjoint": ecdf(0, [_f(float(i)) for i in range(10)], [_f(float(100 + i)) for i in range(3)]),
    "single_values": ecdf(4, [_f(7.0)], [_f(-7.0)]),
    "kinds": ecdf(5, [bytes([k]) + b"\x03" * 8 for k in range(8)], [bytes([k]) + b"\x81" * 8 for k in range(8)]),
}


def main() -> None:
    for name, seeds in (("fuzz_predictions", PREDICTIONS), ("fuzz_labels", LABELS), ("fuzz_ecdf", ECDF)):
        d = os.path.join(HERE, "corpus", name)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            if not old.startswith("."):
                os.remove(os.path.join(d, old))
        for seed, data in seeds.items():
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)
        print(f"{name}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
