"""A deterministic byte provider and the hostile-JSON record builders the decoder drivers use.

Why not ``atheris.FuzzedDataProvider``: the replay test (tests/unit/test_fuzz_corpus.py) runs
every corpus and crash file through the drivers without atheris installed, and a crash file
must rebuild exactly the records it crashed with. This provider is pure Python, consumes bytes
from the front and reads zeros once the input is spent, so an input means the same records with
or without atheris (its methods mirror the FuzzedDataProvider names the drivers need).
"""

from __future__ import annotations

import struct
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")

# Records in a decoder driver's input are separated by this byte (RFC 7464's record separator).
SEP = b"\x1e"
MAX_RECORDS = 8
STRUCTURED = b"\x01"  # a part starting with this byte is built into a record by the provider
NONE_RECORD = b"\x02"  # a part that is exactly this byte is a null Kafka value (None)


class Provider:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.spaces = self.odd_spaces = False  # the record's whitespace style (see ws())
        self.numbers: list[bytes] = []  # every number token written (the drivers check their conversion)

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def ConsumeBytes(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + max(n, 0)]
        self.pos += len(out)
        return out

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:
        span = hi - lo
        if span <= 0:
            return lo
        x, nbytes = 0, (span.bit_length() + 7) // 8
        for _ in range(nbytes):
            x = (x << 8) | self.byte()
        return lo + x % (span + 1)

    def ConsumeBool(self) -> bool:
        return bool(self.byte() & 1)

    def one_in(self, n: int) -> bool:
        """True about once in ``n``; False once the input is spent (the clean choice)."""
        return self.ConsumeIntInRange(0, n - 1) == n - 1

    def PickValueInList(self, values: Sequence[T]) -> T:
        return values[self.ConsumeIntInRange(0, len(values) - 1)]

    def ConsumeFloat(self) -> float:
        """Any double, NaN and infinities included (8 bytes, zero-padded)."""
        return struct.unpack("<d", self.ConsumeBytes(8).ljust(8, b"\0"))[0]

    def shuffled(self, items: list[T]) -> list[T]:
        out = list(items)
        for i in range(len(out) - 1, 0, -1):
            j = self.ConsumeIntInRange(0, i)
            out[i], out[j] = out[j], out[i]
        return out


# ---------------------------------------------------------------------------------- tokens
# Every token is bytes: raw bytes (invalid UTF-8, control bytes) go into records as they are.

LONG_ZEROS = b"0." + b"0" * 200 + b"1e1000000"  # +inf by Python's rules (msgspec 0.23 reads 0.0)
HOSTILE_NUMBERS = (
    b"2" + b"0" * 308, b"1" + b"0" * 308,  # 309-digit integers: beyond a double, and 1e308
    b"-" + b"9" * 400, b"7" * 5000, b"1e400", b"-1e400", b"1e-400", b"-1e-400", LONG_ZEROS,
    b"0." + b"0" * 124 + b"1", b"0." + b"0" * 125 + b"15", b"0." + b"0" * 126 + b"15",  # the 128-char token limit
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"9007199254740993", b"9007199254740992",
    b"-9007199254740993", b"18446744073709551616", b"-0", b"-0.0", b"0e0", b"0E-0", b"123456789012345678901234",
    b"1.7976931348623157e308", b"1.7976931348623159e308", b"2.2250738585072011e-308", b"4.9406564584124654e-324",
    b"2.4703282292062328e-324", b"01", b"-01", b"1.", b".5", b"+1", b"1e", b"1e+", b"-", b"0x10", b"1.5.3", b"--1",
    b"1e5.5",
)
CLEAN_STRINGS = (b'"k1"', b'"k2"', b'"p"', b'"north"', b'"south"', '"é ü"'.encode(), b'"a1"', '"ид"'.encode(),
                 '"😀"'.encode())
ODD_STRINGS = (b'"k\\u00e9"', b'"k\\"q"', b'""', b'"\\ud800"', b'"\\udc00x"', b'"\\ud83d\\ude00"', b'"a\\nb"',
               b'"\\/"', b'"\\u0000"', b'"tab\there"', b'"caf\xc3"', b'"\xff"', b'"\xed\xa0\x80"', b'"\\x41"',
               b'"\\u12"', b'"a', b'"\xf4\x90\x80\x80"', b'"\xc0\xaf"')
TIMESTAMPS = (b"1790000000.5", b"1790000000250", b"1790000000", b"null", b'"2026-11-22T10:00:00Z"',
              b'"2026-11-22t10:00:00z"', b'"2026-11-22T10:00:00.123456789+05:30"', b'"2026-11-22"', b'"bad"',
              b'"9999-12-31T23:59:59Z"', b'"10000-01-01T00:00:00Z"', b"-5", b"0", b"1e20", b"253402300800",
              b"253402300799.9", b"1e11", b"100000000001", b"true", b"[]", b'"1790000000"', b'""')
WS = (b" ", b"\n", b"\t ", b"\r\n  ")
ODD_WS = (b"\x0b", b"\x0c", b"\xc2\xa0", b"\x00", b"\xef\xbb\xbf")


def style(p: Provider) -> None:
    """Per record: compact (most producers), spaced, or (rarely) with non-JSON whitespace."""
    p.spaces, p.odd_spaces = p.one_in(3), p.one_in(16)


def ws(p: Provider) -> bytes:
    if p.odd_spaces and p.one_in(8):
        return p.PickValueInList(ODD_WS)
    return p.PickValueInList(WS) if p.spaces and p.ConsumeBool() else b""


def number(p: Provider) -> bytes:
    tok = _number(p)
    p.numbers.append(tok)
    return tok


def _number(p: Provider) -> bytes:
    kind = p.ConsumeIntInRange(0, 7)
    if kind == 0:
        x = p.ConsumeFloat()
        if x != x or x in (float("inf"), float("-inf")):
            return p.PickValueInList((b"NaN", b"Infinity", b"-Infinity", b"1e400"))
        return p.PickValueInList((repr(x), f"{x:.17g}", f"{x:e}", f"{x:.3E}")).encode()
    if kind == 1:  # digits, leading zeros and all
        return (b"-" if p.ConsumeBool() else b"") + bytes(48 + b % 10 for b in p.ConsumeBytes(p.ConsumeIntInRange(1, 40)))
    if kind == 2:  # free-form number characters
        return bytes(b"0123456789-+.eE"[b % 15] for b in p.ConsumeBytes(p.ConsumeIntInRange(1, 24))) or b"0"
    if kind == 3:
        return p.PickValueInList(HOSTILE_NUMBERS)
    if kind == 4:  # a decimal spelling: mantissa, fraction digits, exponent
        m = str(p.ConsumeIntInRange(0, 10**30))
        frac = p.ConsumeIntInRange(0, 25)
        if 0 < frac < len(m):
            m = m[:-frac] + "." + m[-frac:]
        e = p.ConsumeIntInRange(-400, 400)
        sign = "-" if p.ConsumeBool() else ""
        return (sign + m + (p.PickValueInList(("e", "E", "e+", "e-0")) + str(e) if p.ConsumeBool() else "")).encode()
    if kind == 5:  # long digit runs around the 128-character token limit
        n = p.ConsumeIntInRange(100, 140)
        return p.PickValueInList((b"0." + b"0" * n + b"1", b"1" * n, b"1." + b"2" * n, b"0." + b"0" * n + b"1e%d" % n))
    return repr(p.ConsumeIntInRange(-1000, 1000) / p.PickValueInList((1, 2, 4, 10, 3))).encode()


def string(p: Provider) -> bytes:
    kind = p.ConsumeIntInRange(0, 15)
    if kind == 9:
        return p.PickValueInList(ODD_STRINGS)
    if kind == 10:  # raw bytes between quotes: quotes, backslashes, control bytes, invalid UTF-8
        return b'"' + p.ConsumeBytes(p.ConsumeIntInRange(0, 12)) + b'"'
    if kind == 11:  # around the scanner's category cache length limit (96 bytes)
        return b'"' + b"c" * p.ConsumeIntInRange(90, 140) + b'"'
    if kind == 12:
        return b'"c%d"' % p.ConsumeIntInRange(0, 300)
    if kind == 13:
        return '"{}"'.format("".join(chr(0x41 + b % 58) for b in p.ConsumeBytes(p.ConsumeIntInRange(1, 8)))).encode()
    if kind == 14:
        return b'"' + p.ConsumeBytes(p.ConsumeIntInRange(1, 6)).hex().encode() + b'"'
    return p.PickValueInList(CLEAN_STRINGS)


def nested(p: Provider, depth: int) -> bytes:
    kind = p.ConsumeIntInRange(0, 5)
    if kind == 0:  # around the scanner's depth limit (64), orjson's (1024) and Python's recursion limit
        n = p.PickValueInList((2, 63, 64, 65, 66, 200, 1100, 3000))
        return b"[" * n + b"]" * n
    if kind == 1:
        n = p.PickValueInList((3, 64, 65, 1100))
        return b'{"a":' * n + b"1" + b"}" * n
    if kind == 2:
        return b"[" + b", ".join(value(p, depth + 1) for _ in range(p.ConsumeIntInRange(0, 3))) + b"]"
    if kind == 3:
        return b"{" + b",".join(ws(p) + string(p) + b":" + value(p, depth + 1)
                                for _ in range(p.ConsumeIntInRange(0, 3))) + b"}"
    if kind == 4:
        return p.PickValueInList((b"[]", b"{}", b"[1, 2]", b'{"n": 1}', b'{"a": [null]}', b"[", b"{", b'{"a"}',
                                  b"[1,]", b'{"a":1,}'))
    return b"[" * 70 + number(p) + b"]" * 70


def value(p: Provider, depth: int = 0) -> bytes:
    """Any JSON-ish value, hostile ones included."""
    kind = p.ConsumeIntInRange(0, 9)
    if kind <= 2:
        return number(p)
    if kind <= 4:
        return string(p)
    if kind == 5:
        return p.PickValueInList((b"null", b"true", b"false", b"nul", b"tru", b"fals", b"True", b"None", b"n"))
    if kind == 6 and depth < 2:
        return nested(p, depth)
    return p.PickValueInList((b"0", b"1", b"null", b'"k1"', b"0.5"))


def mostly(p: Provider, clean: bytes, one_in: int = 8) -> bytes:
    """``clean``, or (about 1 in ``one_in``) any value."""
    return value(p) if p.one_in(one_in) else clean


def key(p: Provider, name: str) -> bytes:
    if p.one_in(40):  # the same key spelled with escapes: the scanner punts, the exact route reads it
        return ('"' + "".join(f"\\u{ord(ch):04x}" for ch in name) + '"').encode()
    return b'"' + name.encode() + b'"'


def obj(p: Provider, pairs: list[tuple[str, bytes]]) -> bytes:
    return b"{" + b",".join(ws(p) + key(p, k) + ws(p) + b":" + ws(p) + v + ws(p) for k, v in pairs) + b"}"


Spec = tuple[Sequence[str], Sequence[str], Sequence[str]]


def features(p: Provider, spec: Spec) -> bytes:
    numeric, categorical, extra = spec
    pairs = []
    for name in numeric:
        if not p.one_in(30):
            clean = number(p) if p.one_in(3) else repr(p.ConsumeIntInRange(-99, 99) / 4).encode()
            pairs.append((name, b"null" if p.one_in(12) else mostly(p, clean, 12)))
    for name in categorical:
        if not p.one_in(30):
            pairs.append((name, b"null" if p.one_in(12) else mostly(p, p.PickValueInList(CLEAN_STRINGS), 12)))
    for name in extra:
        if not p.one_in(4):
            pairs.append((name, value(p)))
    if p.one_in(20):  # an unexpected or a duplicate key
        pairs.append((p.PickValueInList(("zz", "x", "c", "z", "k", "seg", "")), value(p)))
    if p.ConsumeBool():
        pairs = p.shuffled(pairs)
    return obj(p, pairs)


def _finish(p: Provider, pairs: list[tuple[str, bytes]]) -> bytes:
    if p.one_in(24):
        pairs.pop(p.ConsumeIntInRange(0, len(pairs) - 1))  # a required (or other) field missing
    if p.one_in(24):
        pairs.append(p.PickValueInList(pairs))  # a duplicate field
    if p.one_in(6):  # "features" (or anything) before "model"
        pairs = p.shuffled(pairs)
    text = ws(p) + obj(p, pairs) + ws(p)
    if p.one_in(24):
        text += p.PickValueInList((b"x", b"}", b",", b" 1", b"{}", b"\x00", b" \n"))
    if p.one_in(24):
        text = text[:p.ConsumeIntInRange(0, len(text))]
    return text


MODELS = ("a", "a", "b", "b", "n", "u", "zz", "")


def prediction(p: Provider, specs: dict[str, Spec]) -> bytes:
    """A prediction record that mostly keeps the contract, its values chosen by the fuzzer."""
    style(p)
    model = p.PickValueInList(MODELS)
    spec = specs.get(model) or specs[p.PickValueInList(sorted(specs))]
    pairs = [("prediction_id", mostly(p, b'"p%d"' % p.ConsumeIntInRange(0, 99))),
             ("model", mostly(p, b'"' + model.encode() + b'"', 16)),
             ("features", value(p) if p.one_in(30) else features(p, spec)),
             ("prediction", mostly(p, p.PickValueInList((b"0", b"1", b"true", b"false", b"0.25", b"-3", b"2e1",
                                                         b'"yes"')), 6))]
    if p.ConsumeBool():
        pairs.append(("timestamp", mostly(p, p.PickValueInList(TIMESTAMPS))))
    if p.ConsumeBool():
        pairs.append(("score", mostly(p, p.PickValueInList((b"0.5", b"0", b"1", b"null", b"1.5", b"-0.1", b"1e-3",
                                                            b"-0.0", b"0.99999999999999999", b"1.0000000000000001")))))
    if p.one_in(3):
        pairs.append(("scores", p.PickValueInList((b"null", b"null", b'{"0": 0.5, "1": 0.5}', b'{"a": 1}',
                                                   b'{"a": 2}', b'{"a": "x"}', b"[]", b'{"a": 1e400}', b"{}",
                                                   b'{"a": -0.0}'))))
    if p.one_in(3):
        pairs.append(("model_version", string(p)))
    if p.one_in(4):
        pairs.append((p.PickValueInList(("note", "label", "meta", "")), value(p)))
    return _finish(p, pairs)


def label(p: Provider) -> bytes:
    """A label record that mostly keeps the contract, its values chosen by the fuzzer."""
    style(p)
    pairs = [("prediction_id", mostly(p, b'"p%d"' % p.ConsumeIntInRange(0, 99))),
             ("model", mostly(p, b'"' + p.PickValueInList(MODELS).encode() + b'"', 16)),
             ("label", mostly(p, p.PickValueInList((b"0", b"1", b"true", b"false", b"0.5", b"2", b'"yes"', b"-0")), 5))]
    if p.ConsumeBool():
        pairs.append(("timestamp", mostly(p, p.PickValueInList(TIMESTAMPS))))
    if p.one_in(4):
        pairs.append((p.PickValueInList(("note", "features", "prediction", "score", "")), value(p)))
    return _finish(p, pairs)


def records(body: bytes, build: Callable[[Provider], bytes]) -> tuple[list[bytes | None], list[bytes]]:
    """A decoder driver's batch from the input after its config byte, and the number tokens to
    check: up to MAX_RECORDS parts split on SEP; a part starting with STRUCTURED is built by
    ``build`` from its remaining bytes, a part equal to NONE_RECORD is a null Kafka value, any
    other part is a record's raw bytes (and is checked as a number token too)."""
    out: list[bytes | None] = []
    numbers: list[bytes] = []
    for part in body.split(SEP)[:MAX_RECORDS]:
        if part == NONE_RECORD:
            out.append(None)
        elif part[:1] == STRUCTURED:
            p = Provider(part[1:])
            out.append(build(p))
            numbers.extend(p.numbers)
        else:
            out.append(part)
            numbers.append(part)
    return out, numbers
