"""The Broker seam's contract, run against both clients (kafka-python and confluent-kafka) on a
real tansu broker: ordered batched polls, commits, seeks and on_assign offsets, rebalance
callbacks, dead letters with headers, several partitions, and a broker killed and restarted on
durable (S3) storage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from agent.ingest.broker import DLQ_ORIGINAL_SIZE, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, BrokerCommon, RecordBatch, next_offsets
from agent.ingest.kafka_python import KafkaBroker
from agent.ingest.confluent import ConfluentBroker
from agent.ingest.embedded import EmbeddedBroker
from tests.support.s3 import S3Storage
from tests.support.kafka import offsets_by_partition, produce, read_until

Broker = BrokerCommon
BrokerClass = type[KafkaBroker] | type[ConfluentBroker]


@pytest.fixture(params=[KafkaBroker, ConfluentBroker], ids=["kafka-python", "confluent"])
def client(request: pytest.FixtureRequest) -> BrokerClass:
    return request.param


def test_poll_reads_20000_records_in_order(client: BrokerClass, broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("predictions")
    broker.create_topics([topic])
    produce(broker.bootstrap, topic, 20_000)
    with client(broker.bootstrap, [topic], group_id=topic) as cb:
        batches = read_until(cb, 20_000)
        assert cb.poll(max_records=5_000, timeout_s=0.5) == []
        assert cb.connected()
        assert cb.lag() == {(topic, 0): 0}
    assert not cb.connected()      # closed deliberately
    assert len(batches) > 1, "expected several batches"
    assert all(len(b) <= 5_000 for b in batches)
    assert all(b.offsets.dtype == np.int64 and b.timestamps_ms.dtype == np.int64 for b in batches)
    offsets = offsets_by_partition(batches)[(topic, 0)]
    np.testing.assert_array_equal(offsets, np.arange(20_000))
    values = [v for b in batches for v in b.values]
    assert [json.loads(v)["i"] for v in values] == list(range(20_000))
    assert [k for b in batches for k in b.keys][:2] == [b"k0", b"k1"]
    now_ms = time.time() * 1000
    assert all(abs(b.timestamps_ms[0] - now_ms) < 600_000 for b in batches)
    assert next_offsets(batches) == {(topic, 0): 20_000}


def test_commit_then_new_member_resumes_after_commit(client: BrokerClass, broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic])
    produce(broker.bootstrap, topic, 100)
    with client(broker.bootstrap, [topic], group_id=topic) as cb:
        read_until(cb, 100)
        assert cb.commit({(topic, 0): 60})
        assert cb.commit({})
    with client(broker.bootstrap, [topic], group_id=topic) as cb:
        batches = read_until(cb, 40)
        assert cb.poll(max_records=100, timeout_s=0.5) == []
    np.testing.assert_array_equal(offsets_by_partition(batches)[(topic, 0)], np.arange(60, 100))


def test_seek_and_on_assign_offsets(client: BrokerClass, broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic])
    produce(broker.bootstrap, topic, 50)
    assigned: list[set[tuple[str, int]]] = []

    def on_assign(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        assigned.append(partitions)
        return {(topic, 0): 30}          # as if restored from the agent's checkpoint

    with client(broker.bootstrap, [topic], group_id=topic, on_assign=on_assign) as cb:
        first = read_until(cb, 20)
        assert assigned == [{(topic, 0)}]
        assert cb.assignment() == {(topic, 0)}
        assert first[0].offsets[0] == 30   # no record before the on_assign offset, ever
        np.testing.assert_array_equal(offsets_by_partition(first)[(topic, 0)], np.arange(30, 50))
        cb.seek({(topic, 0): 10})
        again = read_until(cb, 40)
        np.testing.assert_array_equal(offsets_by_partition(again)[(topic, 0)], np.arange(10, 50))
        assert cb.lag() == {(topic, 0): 0}
        with pytest.raises(ValueError, match="not assigned"):
            cb.seek({("other-topic", 0): 1})
        with pytest.raises(ValueError, match=">= 0"):
            cb.seek({(topic, 0): -1})


def test_on_assign_error_surfaces_from_poll(client: BrokerClass, broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic])

    def on_assign(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        raise OSError("checkpoint unreadable")

    with client(broker.bootstrap, [topic], group_id=topic, on_assign=on_assign) as cb:
        with pytest.raises(OSError, match="checkpoint unreadable"):
            for _ in range(40):
                cb.poll(max_records=10, timeout_s=0.5)


def test_rebalance_calls_on_revoke_and_its_error_surfaces_from_poll(client: BrokerClass, broker: EmbeddedBroker,
                                                                    unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic], partitions=2)
    produce(broker.bootstrap, topic, 10, partitions=2)
    revoked: list[set[tuple[str, int]]] = []

    def on_revoke(partitions: set[tuple[str, int]]) -> None:
        revoked.append(partitions)
        raise RuntimeError("checkpoint on revoke failed")

    with client(broker.bootstrap, [topic], group_id=topic, on_revoke=on_revoke) as first:
        read_until(first, 10)
        assert first.assignment() == {(topic, 0), (topic, 1)}
        with client(broker.bootstrap, [topic], group_id=topic) as second:
            deadline = time.monotonic() + 30
            with pytest.raises(RuntimeError, match="checkpoint on revoke failed"):
                while time.monotonic() < deadline:   # both members poll, as two agents would
                    first.poll(max_records=100, timeout_s=0.2)
                    second.poll(max_records=100, timeout_s=0.2)
            assert revoked == [{(topic, 0), (topic, 1)}]   # eager: the whole assignment
            deadline = time.monotonic() + 30  # a rejoin of its own after the failed one (one more round)
            while not len(first.assignment()) == len(second.assignment()) == 1:
                assert time.monotonic() < deadline, "the group did not settle"
                first.poll(max_records=100, timeout_s=0.2)
                second.poll(max_records=100, timeout_s=0.2)
            assert len(first.assignment()) == len(second.assignment()) == 1
    assert len(revoked) == 1        # close() does not call on_revoke


def test_dead_letter_lands_in_dlq_with_headers(client: BrokerClass, broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("predictions")
    broker.create_topics([topic, topic + ".dlq"])
    big = b"x" * 5_000
    with client(broker.bootstrap, [topic], group_id=topic, dlq_max_value_bytes=1_000) as cb:
        assert cb.flush(timeout_s=1)     # nothing queued
        cb.dead_letter(topic, b"id-1", b"{not json", "invalid JSON: line 1", partition=0, offset=7)
        cb.dead_letter(topic, None, big, "too large", partition=0, offset=8)
        assert cb.flush(timeout_s=20)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic + ".dlq", 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 2 and time.monotonic() < deadline:
            records += consumer.poll(timeout_ms=500).get(tp, [])
    finally:
        consumer.close()
    assert len(records) == 2
    first, second = (dict(r.headers) for r in records)
    assert records[0].key == b"id-1" and records[0].value == b"{not json"
    assert first[DLQ_REASON] == b"invalid JSON: line 1"
    assert first[DLQ_SOURCE_TOPIC] == topic.encode()
    assert first[DLQ_SOURCE_PARTITION] == b"0" and first[DLQ_SOURCE_OFFSET] == b"7"
    assert DLQ_ORIGINAL_SIZE not in first
    assert records[1].key is None
    assert records[1].value == big[:1_000] and second[DLQ_ORIGINAL_SIZE] == b"5000"
    assert second[DLQ_REASON] == b"too large" and second[DLQ_SOURCE_OFFSET] == b"8"


def test_two_partitions(client: BrokerClass, broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic], partitions=2)
    produce(broker.bootstrap, topic, 3_000, partitions=2)
    with client(broker.bootstrap, [topic], group_id=topic) as cb:
        batches = read_until(cb, 3_000)
        assert cb.assignment() == {(topic, 0), (topic, 1)}
    by_tp = offsets_by_partition(batches)
    assert set(by_tp) == {(topic, 0), (topic, 1)}
    for p in (0, 1):
        np.testing.assert_array_equal(by_tp[(topic, p)], np.arange(1_500))
    for b in batches:   # a batch holds one partition: values i with i % 2 == partition
        assert {json.loads(v)["i"] % 2 for v in b.values} == {b.partition}


def wait_until(cond: Callable[[], bool], cb: Broker, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout_s, f"{what} not reached in {timeout_s}s"
        assert cb.poll(max_records=100, timeout_s=0.2) == []
    return time.monotonic() - start


def test_kill_and_restart_on_s3_loses_nothing(client: BrokerClass, s3_storage: S3Storage, tmp_path) -> None:
    tansu = EmbeddedBroker(storage=s3_storage.url, env=s3_storage.env,
                           log_path=tmp_path / "tansu.log").start()
    try:
        topic = "restart.predictions"
        tansu.create_topics([topic])
        produce(tansu.bootstrap, topic, 5_000)
        checkpoint: dict[tuple[str, int], int] = {}   # the agent's checkpoint, in memory here
        seen: list[np.ndarray] = []
        assigned: list[dict[tuple[str, int], int]] = []

        def on_assign(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
            offsets = {tp: checkpoint[tp] for tp in partitions if tp in checkpoint}
            assigned.append(offsets)
            return offsets

        def consume(batches: list[RecordBatch]) -> None:
            seen.extend(b.offsets for b in batches)
            checkpoint.update(next_offsets(batches))

        with client(tansu.bootstrap, [topic], group_id="restart",
                             on_assign=on_assign) as cb:
            consume(read_until(cb, 5_000))
            assert cb.connected()

            tansu.stop(kill=True)
            wait_until(lambda: not cb.connected(), cb, 10, "connected() == False")
            assert cb.poll(max_records=100, timeout_s=0.5) == []   # never raises on a dead broker
            assert cb.lag() == {}

            tansu.start()
            wait_until(cb.connected, cb, 20, "connected() == True")
            produce(tansu.bootstrap, topic, 5_000, start=5_000)
            deadline = time.monotonic() + 60
            while sum(len(s) for s in seen) < 10_000:
                assert time.monotonic() < deadline, f"read {sum(len(s) for s in seen)} of 10000"
                consume(cb.poll(max_records=5_000, timeout_s=0.5))
            consume(cb.poll(max_records=5_000, timeout_s=1.0))   # nothing extra arrives
        np.testing.assert_array_equal(np.concatenate(seen), np.arange(10_000))
        assert assigned[0] == {}
        # records produced before the kill are still readable from the start after it
        fresh = KafkaConsumer(bootstrap_servers=tansu.bootstrap, enable_auto_commit=False)
        try:
            tp = TopicPartition(topic, 0)
            fresh.assign([tp])
            fresh.seek_to_beginning(tp)
            values: list[bytes] = []
            deadline = time.monotonic() + 30
            while len(values) < 10_000 and time.monotonic() < deadline:
                values += [r.value for r in fresh.poll(timeout_ms=500, max_records=5_000).get(tp, [])]
        finally:
            fresh.close()
        assert [json.loads(v)["i"] for v in values] == list(range(10_000))
    finally:
        tansu.stop()
