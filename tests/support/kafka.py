"""Helpers for tests that talk to a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from agent.ingest.broker import BrokerCommon, RecordBatch
from agent.ingest.kafka_python import KafkaProducerSink


def produce(bootstrap: str, topic: str, n: int, partitions: int = 1, start: int = 0) -> None:
    """Records ``{"i": i}`` with keys ``k<i>``, record i on partition ``i % partitions``."""
    with KafkaProducerSink(bootstrap) as sink:
        for i in range(start, start + n):
            sink.send(topic, f"k{i}".encode(), json.dumps({"i": i}).encode(), partition=i % partitions)


def read_until(broker: BrokerCommon, n: int, timeout_s: float = 60) -> list[RecordBatch]:
    """Poll until `n` records were read (counted by reading, never by ListOffsets)."""
    batches: list[RecordBatch] = []
    got = 0
    deadline = time.monotonic() + timeout_s
    while got < n:
        assert time.monotonic() < deadline, f"read {got} of {n} records before the timeout"
        new = broker.poll(max_records=5_000, timeout_s=0.5)
        batches += new
        got += sum(len(b) for b in new)
    return batches


def offsets_by_partition(batches: list[RecordBatch]) -> dict[tuple[str, int], np.ndarray]:
    out: dict[tuple[str, int], list[np.ndarray]] = {}
    for b in batches:
        out.setdefault((b.topic, b.partition), []).append(b.offsets)
    return {k: np.concatenate(v) for k, v in out.items()}


def end_offsets(bootstrap: str, counts: Mapping[str, int], timeout_s: float = 60) -> dict[tuple[str, int], int]:
    """``{(topic, partition): last offset + 1}`` of topics that hold ``counts[topic]`` records, found by
    reading them from their beginning (a consumer of no group, which disturbs no one's offsets), never
    by ListOffsets: tansu's latest offset has been seen trailing the true end by up to one batch.

    For a topic of one partition starting at offset 0 this is its record count: compare it with a
    consumer's position (checkpointed or committed offsets, or the records /metrics counted)."""
    counts = {t: n for t, n in counts.items() if n > 0}
    if not counts:
        return {}
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = []
        for topic in counts:
            while not (parts := consumer.partitions_for_topic(topic)):
                assert time.monotonic() < deadline, f"topic {topic!r} not found before the timeout"
                time.sleep(0.1)
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: Counter[str] = Counter()
        ends: dict[tuple[str, int], int] = {}
        while any(got[t] < n for t, n in counts.items()):
            assert time.monotonic() < deadline, f"read {dict(got)} of {counts} records before the timeout"
            for tp, recs in consumer.poll(timeout_ms=500).items():
                got[tp.topic] += len(recs)
                ends[(tp.topic, tp.partition)] = recs[-1].offset + 1
    finally:
        consumer.close()
    return ends


def read_to_end(bootstrap: str, topic: str, partition: int = 0, timeout_s: float = 30) -> list[Any]:
    """Every record of one partition, read from its beginning up to its end, as kafka-python
    ``ConsumerRecord``s. The end is found by reading too: a marker record is appended first and
    reading stops there, so what was written before the call is all read, and nothing after.
    Only for topics no one consumes as data (e.g. dead-letter topics): the marker stays there."""
    marker = f"end-marker-{uuid.uuid4().hex}".encode()
    with KafkaProducerSink(bootstrap) as sink:
        sink.send(topic, marker, b"", partition=partition)
    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        while True:
            assert time.monotonic() < deadline, \
                f"{topic}[{partition}]: the end marker not read in {timeout_s}s ({len(got)} records before it)"
            for rec in consumer.poll(timeout_ms=500).get(tp, []):
                if rec.key == marker:
                    return got
                got.append(rec)
    finally:
        consumer.close()
