"""Helpers for tests that talk to a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import json
import time

import numpy as np

from agent.broker import BrokerCommon, KafkaProducerSink, RecordBatch


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
