"""KafkaBroker against a real tansu broker; the Prometheus/Alertmanager harness against real binaries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from agent.broker import (DLQ_ORIGINAL_SIZE, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION,
                          DLQ_SOURCE_TOPIC, KafkaBroker, KafkaProducerSink, RecordBatch,
                          next_offsets)
from agent.embedded import EmbeddedBroker, S3Storage


def produce(bootstrap: str, topic: str, n: int, partitions: int = 1, start: int = 0) -> None:
    with KafkaProducerSink(bootstrap) as sink:
        for i in range(start, start + n):
            sink.send(topic, f"k{i}".encode(), json.dumps({"i": i}).encode(), partition=i % partitions)


def read_until(kb: KafkaBroker, n: int, timeout_s: float = 60) -> list[RecordBatch]:
    """Poll until `n` records were read (counted by reading, never by ListOffsets)."""
    batches: list[RecordBatch] = []
    got = 0
    deadline = time.monotonic() + timeout_s
    while got < n:
        assert time.monotonic() < deadline, f"read {got} of {n} records before the timeout"
        new = kb.poll(max_records=5_000, timeout_s=0.5)
        batches += new
        got += sum(len(b) for b in new)
    return batches


def offsets_by_partition(batches: list[RecordBatch]) -> dict[tuple[str, int], np.ndarray]:
    out: dict[tuple[str, int], list[np.ndarray]] = {}
    for b in batches:
        out.setdefault((b.topic, b.partition), []).append(b.offsets)
    return {k: np.concatenate(v) for k, v in out.items()}


def test_poll_reads_20000_records_in_order(broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("predictions")
    broker.create_topics([topic])
    produce(broker.bootstrap, topic, 20_000)
    with KafkaBroker(broker.bootstrap, [topic], group_id=topic) as kb:
        batches = read_until(kb, 20_000)
        assert kb.poll(max_records=5_000, timeout_s=0.5) == []
        assert kb.connected()
    assert len(batches) > 1, "expected several batches"
    assert all(b.offsets.dtype == np.int64 and b.timestamps_ms.dtype == np.int64 for b in batches)
    offsets = offsets_by_partition(batches)[(topic, 0)]
    np.testing.assert_array_equal(offsets, np.arange(20_000))
    values = [v for b in batches for v in b.values]
    assert [json.loads(v)["i"] for v in values] == list(range(20_000))
    assert [k for b in batches for k in b.keys][:2] == [b"k0", b"k1"]
    now_ms = time.time() * 1000
    assert all(abs(b.timestamps_ms[0] - now_ms) < 600_000 for b in batches)
    assert next_offsets(batches) == {(topic, 0): 20_000}


def test_commit_then_new_member_resumes_after_commit(broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic])
    produce(broker.bootstrap, topic, 100)
    with KafkaBroker(broker.bootstrap, [topic], group_id=topic) as kb:
        read_until(kb, 100)
        assert kb.commit({(topic, 0): 60})
    with KafkaBroker(broker.bootstrap, [topic], group_id=topic) as kb:
        batches = read_until(kb, 40)
    np.testing.assert_array_equal(offsets_by_partition(batches)[(topic, 0)], np.arange(60, 100))


def test_seek_and_on_assign_offsets(broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic])
    produce(broker.bootstrap, topic, 50)
    assigned: list[set[tuple[str, int]]] = []

    def on_assign(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        assigned.append(partitions)
        return {(topic, 0): 30}          # as if restored from the agent's checkpoint

    with KafkaBroker(broker.bootstrap, [topic], group_id=topic, on_assign=on_assign) as kb:
        first = read_until(kb, 20)
        assert assigned == [{(topic, 0)}]
        assert kb.assignment() == {(topic, 0)}
        assert first[0].offsets[0] == 30
        kb.seek({(topic, 0): 10})
        again = read_until(kb, 40)
        np.testing.assert_array_equal(offsets_by_partition(again)[(topic, 0)], np.arange(10, 50))
        assert kb.lag() == {(topic, 0): 0}
        with pytest.raises(ValueError, match="not assigned"):
            kb.seek({("other-topic", 0): 1})


def test_on_assign_error_surfaces_from_poll(broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic])

    def on_assign(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        raise OSError("checkpoint unreadable")

    with KafkaBroker(broker.bootstrap, [topic], group_id=topic, on_assign=on_assign) as kb:
        with pytest.raises(OSError, match="checkpoint unreadable"):
            for _ in range(40):
                kb.poll(max_records=10, timeout_s=0.5)


def test_dead_letter_lands_in_dlq_with_headers(broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("predictions")
    broker.create_topics([topic, topic + ".dlq"])
    big = b"x" * 5_000
    with KafkaBroker(broker.bootstrap, [topic], group_id=topic, dlq_max_value_bytes=1_000) as kb:
        kb.dead_letter(topic, b"id-1", b"{not json", "invalid JSON: line 1", partition=0, offset=7)
        kb.dead_letter(topic, None, big, "too large", partition=0, offset=8)
        assert kb.flush(timeout_s=20)
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
    assert records[1].value == big[:1_000] and second[DLQ_ORIGINAL_SIZE] == b"5000"


def test_two_partitions(broker: EmbeddedBroker, unique_topic) -> None:
    topic = unique_topic("t")
    broker.create_topics([topic], partitions=2)
    produce(broker.bootstrap, topic, 3_000, partitions=2)
    with KafkaBroker(broker.bootstrap, [topic], group_id=topic) as kb:
        batches = read_until(kb, 3_000)
        assert kb.assignment() == {(topic, 0), (topic, 1)}
    by_tp = offsets_by_partition(batches)
    assert set(by_tp) == {(topic, 0), (topic, 1)}
    for p in (0, 1):
        np.testing.assert_array_equal(by_tp[(topic, p)], np.arange(1_500))
    for b in batches:   # a batch holds one partition: values i with i % 2 == partition
        assert {json.loads(v)["i"] % 2 for v in b.values} == {b.partition}


def wait_until(cond: Callable[[], bool], kb: KafkaBroker, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout_s, f"{what} not reached in {timeout_s}s"
        kb.poll(max_records=100, timeout_s=0.2)
    return time.monotonic() - start


def test_kill_and_restart_on_s3_loses_nothing(s3_storage: S3Storage, tmp_path) -> None:
    tansu = EmbeddedBroker(storage=s3_storage.url, env=s3_storage.env,
                           log_path=tmp_path / "tansu.log").start()
    try:
        topic = "restart.predictions"
        tansu.create_topics([topic])
        produce(tansu.bootstrap, topic, 5_000)
        checkpoint: dict[tuple[str, int], int] = {}   # the agent's checkpoint, in memory here
        seen: list[np.ndarray] = []

        def on_assign(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
            return {tp: checkpoint[tp] for tp in partitions if tp in checkpoint}

        def consume(batches: list[RecordBatch]) -> None:
            seen.extend(b.offsets for b in batches)
            checkpoint.update(next_offsets(batches))

        with KafkaBroker(tansu.bootstrap, [topic], group_id="restart", on_assign=on_assign) as kb:
            consume(read_until(kb, 5_000))
            assert kb.connected()

            tansu.stop(kill=True)
            wait_until(lambda: not kb.connected(), kb, 10, "connected() == False")
            assert kb.poll(max_records=100, timeout_s=0.5) == []   # never raises on a dead broker

            tansu.start()
            wait_until(kb.connected, kb, 20, "connected() == True")
            produce(tansu.bootstrap, topic, 5_000, start=5_000)
            deadline = time.monotonic() + 60
            while sum(len(s) for s in seen) < 10_000:
                assert time.monotonic() < deadline, f"read {sum(len(s) for s in seen)} of 10000"
                consume(kb.poll(max_records=5_000, timeout_s=0.5))
            consume(kb.poll(max_records=5_000, timeout_s=1.0))   # nothing extra arrives
        np.testing.assert_array_equal(np.concatenate(seen), np.arange(10_000))
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


def test_memory_storage_topic_data_after_restart_is_gone(tmp_path) -> None:
    """Documents the difference with S3: memory:// keeps nothing across a restart."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as tansu:
        tansu.create_topics(["m"])
        produce(tansu.bootstrap, "m", 10)
        tansu.restart(kill=True)
        consumer = KafkaConsumer(bootstrap_servers=tansu.bootstrap)
        try:
            assert "m" not in consumer.topics()
        finally:
            consumer.close()


def test_prometheus_scrapes_a_real_exporter(prometheus_factory) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from tests.support.services import free_port

    registry = CollectorRegistry()
    Gauge("driftwarden_harness_check", "Harness self-test.", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prom = prometheus_factory([f"127.0.0.1:{port}"])
        result = prom.wait_for("driftwarden_harness_check", lambda r: len(r) == 1, timeout=30)
        assert float(result[0]["value"][1]) == 42.0
        assert result[0]["metric"]["job"] == "driftwarden"
        with pytest.raises(ValueError, match="bad PromQL"):
            prom.query("sum(")
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_alertmanager_delivers_to_webhook(alertmanager_factory) -> None:
    from tests.support.services import free_port

    received: list[dict] = []
    arrived = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    hook = ThreadingHTTPServer(("127.0.0.1", port), Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    try:
        am = alertmanager_factory(f"http://127.0.0.1:{port}/alerts")
        am.post_alerts({"labels": {"alertname": "DriftwardenDataDrift", "model": "car-loan"},
                        "annotations": {"summary": "test"}})
        assert arrived.wait(timeout=20), f"no webhook call; log:\n{am.log_tail()}"
        alert = received[0]["alerts"][0]
        assert alert["labels"]["alertname"] == "DriftwardenDataDrift"
        assert alert["status"] == "firing"
        assert [a["labels"]["model"] for a in am.alerts()] == ["car-loan"]
    finally:
        hook.shutdown()
        thread.join(timeout=5)
