"""agent.kafka_batches: kafka-python's record batches read natively give exactly the records
kafka-python's own reader gives (offsets, timestamps, keys, values, headers, sizes), on batches
kafka-python itself builds; a malformed body is reported by kafka-python's reader, as before."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from agent import kafka_batches


def python_records(buf: bytes) -> list[tuple[Any, ...]]:
    """kafka-python's own reader (its __next__), whatever __iter__ is patched to."""
    batch = DefaultRecordBatch(buf)
    batch._maybe_uncompress()
    out = []
    while True:
        try:
            out.append(batch.__next__())
        except StopIteration:
            return [as_tuple(r) for r in out]


def native_records(buf: bytes) -> list[tuple[Any, ...]]:
    assert kafka_batches.install() and kafka_batches.installed()
    return [as_tuple(r) for r in DefaultRecordBatch(buf)]


def as_tuple(r: Any) -> tuple[Any, ...]:
    return (type(r).__name__, r.size_in_bytes, r.offset, r.timestamp, r.timestamp_type, r.key, r.value, r.headers)


RECORD = st.tuples(
    st.none() | st.binary(max_size=40),  # key
    st.none() | st.binary(max_size=300),  # value
    st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=12)), max_size=3),  # headers
    st.integers(0, 10**6),  # timestamp delta
)


def build(records: list[tuple[Any, ...]], compression: int = 0, base_offset: int = 0) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, (key, value, headers, dt) in enumerate(records):
        b.append(i, timestamp=1_790_000_000_000 + dt, key=key, value=value, headers=headers)
    buf = bytearray(b.build())
    buf[0:8] = base_offset.to_bytes(8, "big", signed=True)
    return bytes(buf)


def test_native_reader_is_installed_for_the_pinned_kafka_python() -> None:
    assert kafka_batches.install()


@settings(max_examples=200, deadline=None)
@given(st.lists(RECORD, min_size=1, max_size=30), st.sampled_from([0, 1]), st.integers(0, 2**40))
def test_native_records_equal_kafka_pythons(records: list[tuple[Any, ...]], compression: int, base: int) -> None:
    buf = build(records, compression, base)  # 1 = gzip: decompressed by kafka-python first
    assert native_records(buf) == python_records(buf)


def test_log_append_time_batches_take_the_batch_timestamp() -> None:
    buf = bytearray(build([(b"k", b"v", [], 5), (None, None, [("h", None)], 9)]))
    buf[22] |= 0x08  # attributes (int16 at offset 21): timestamp type = LOG_APPEND_TIME
    got = native_records(bytes(buf))
    assert got == python_records(bytes(buf)) and {r[4] for r in got} == {1}


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_a_malformed_body_is_reported_by_kafka_python(cut: int) -> None:
    buf = build([(b"key", b"value" * 10, [("h", b"x")], 0)] * 3)
    broken = buf[:-cut]  # truncated: the last record runs past the end
    with pytest.raises(CorruptRecordError):
        python_records(broken)
    with pytest.raises(CorruptRecordError):
        native_records(broken)


def test_bad_utf8_header_key_is_reported_by_kafka_python() -> None:
    buf = bytearray(build([(b"k", b"v", [("hh", b"x")], 0)]))
    i = buf.rindex(b"hh")
    buf[i:i + 2] = b"\xff\xfe"
    with pytest.raises(CorruptRecordError):
        native_records(bytes(buf))
