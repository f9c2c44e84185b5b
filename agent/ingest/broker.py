"""The Broker seam: how the agent reads Kafka, seeks, commits and dead-letters.

The agent only sees `Broker`, `RecordBatch` and plain `(topic, partition)` tuples; no client
types leak out. Two backends implement it: `agent.ingest.kafka_python.KafkaBroker` (the
default) and `agent.ingest.confluent.ConfluentBroker` (librdkafka, faster at high rates).
`BrokerCommon` holds what both share: validation, the connected flag, the dead-letter format.

Threading: a broker is driven from one thread (the ingest loop). Only `connected()` is safe to
call from other threads (readiness probe). Rebalance callbacks run inside `poll()`, on the
calling thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
OnAssign = Callable[[set[TopicPartitionKey]], dict[TopicPartitionKey, int]]
OnRevoke = Callable[[set[TopicPartitionKey]], None]

DLQ_SUFFIX = ".dlq"
# Header names on dead-lettered records (values are UTF-8 bytes).
DLQ_REASON = "dlq.reason"
DLQ_SOURCE_TOPIC = "dlq.source.topic"
DLQ_SOURCE_PARTITION = "dlq.source.partition"
DLQ_SOURCE_OFFSET = "dlq.source.offset"
DLQ_ORIGINAL_SIZE = "dlq.original.size"   # present only when the value was truncated


@dataclass(slots=True)
class RecordBatch:
    """Records of one topic-partition from one poll, in offset order."""

    topic: str
    partition: int
    offsets: np.ndarray         # int64
    timestamps_ms: np.ndarray   # int64 broker/record timestamps
    keys: list[bytes | None]
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.values)

    @property
    def next_offset(self) -> int:
        """Offset to resume from after this batch (last offset + 1)."""
        return int(self.offsets[-1]) + 1


def next_offsets(batches: Iterable[RecordBatch]) -> dict[TopicPartitionKey, int]:
    """The offset to resume from, per partition, after these batches."""
    out: dict[TopicPartitionKey, int] = {}
    for b in batches:
        if len(b):
            key = (b.topic, b.partition)
            out[key] = max(out.get(key, 0), b.next_offset)
    return out


class Broker(Protocol):
    """What the agent needs from a message broker."""

    def start(self) -> None: ...
    def poll(self, max_records: int, timeout_s: float) -> list[RecordBatch]: ...
    def seek(self, offsets: dict[TopicPartitionKey, int]) -> None: ...
    def commit(self, offsets: dict[TopicPartitionKey, int], timeout_s: float | None = None) -> bool: ...
    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str,
                    partition: int, offset: int) -> None: ...
    def flush(self, timeout_s: float = 30.0) -> bool: ...
    def assignment(self) -> set[TopicPartitionKey]: ...
    def lag(self) -> dict[TopicPartitionKey, int]: ...
    def connected(self) -> bool: ...
    def close(self, timeout_s: float = 10.0) -> None: ...


def dead_letter_record(topic: str, value: bytes | None, reason: str, partition: int, offset: int,
                       max_value_bytes: int) -> tuple[str, bytes | None, list[tuple[str, bytes]]]:
    """``(dlq topic, value, headers)`` for a rejected record: the original bytes cut to
    ``max_value_bytes`` (then ``dlq.original.size`` holds the full length), with the reason and
    the source position as headers. Shared by every backend so a DLQ reads the same whatever the
    client."""
    headers = [(DLQ_REASON, reason.encode("utf-8", "replace")),
               (DLQ_SOURCE_TOPIC, topic.encode()),
               (DLQ_SOURCE_PARTITION, str(partition).encode()),
               (DLQ_SOURCE_OFFSET, str(offset).encode())]
    if value is not None and len(value) > max_value_bytes:
        headers.append((DLQ_ORIGINAL_SIZE, str(len(value)).encode()))
        value = value[:max_value_bytes]
    return topic + DLQ_SUFFIX, value, headers


class BrokerCommon:
    """What both Kafka backends share: the connected flag (thread-safe, each change logged once)
    and queueing dead letters in one format. A backend sets ``_dead_letter_type`` and implements
    ``_send_dead_letters``."""

    _dead_letter_type: Callable[..., Any]

    def __init__(self, bootstrap_servers: str | list[str], topics: list[str], group_id: str,
                 client_options: dict[str, Any] | None = None, on_assign: OnAssign | None = None,
                 on_revoke: OnRevoke | None = None, dlq_max_value_bytes: int = 1024 * 1024) -> None:
        if not topics:
            raise ValueError("topics must name at least one topic")
        if not group_id:
            raise ValueError(f"group_id must be a non-empty string, got {group_id!r}")
        if dlq_max_value_bytes <= 0:
            raise ValueError(f"dlq_max_value_bytes must be positive, got {dlq_max_value_bytes}")
        self.bootstrap_servers = bootstrap_servers
        self.topics = list(topics)
        self.group_id = group_id
        self.client_options = dict(client_options or {})
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.dlq_max_value_bytes = dlq_max_value_bytes
        self._consumer: Any = None
        self._producer: Any = None
        self._dlq: list[Any] = []
        self._connected = False
        self._state_lock = threading.Lock()
        self._callback_error: BaseException | None = None
        self._poll_failing = False
        self._closing = False  # close() in progress: the revoke it causes is not the agent's

    def _set_connected(self, state: bool) -> None:
        with self._state_lock:
            if state == self._connected:
                return
            self._connected = state
        if state:
            log.info("broker connection up (%s)", self.bootstrap_servers)
        else:
            log.warning("broker connection down (%s)", self.bootstrap_servers)

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str,
                    partition: int, offset: int) -> None:
        """Queue a bad record for `<topic>.dlq`; it is kept until `flush()` confirms delivery.

        The value is the original bytes, cut to `dlq_max_value_bytes` (then header
        `dlq.original.size` holds the full length). Headers carry reason and source position.
        """
        dlq_topic, value, headers = dead_letter_record(topic, value, reason, partition, offset,
                                                       self.dlq_max_value_bytes)
        self._dlq.append(self._dead_letter_type(dlq_topic, key, value, headers))
        self._send_dead_letters()

    def _send_dead_letters(self) -> None:
        raise NotImplementedError

    # what both backends do the same way, around their client-specific steps ----------------

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what dead letters can be delivered, close the producer, then leave the group.
        Leaving the group revokes the partitions: that revoke is not passed to ``on_revoke``
        (the agent's stop() has already saved its state)."""
        deadline = time.monotonic() + timeout_s
        if self._dlq and not self.flush(timeout_s=max(0.1, timeout_s / 2)):
            log.error("closing with %d dead letters undelivered", len(self._dlq))
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self._close_producer(producer, max(0.1, deadline - time.monotonic()))
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            self._closing = True
            try:
                self._close_consumer(consumer, max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - closing a consumer on a dead broker
                log.warning("consumer close failed", exc_info=True)
        with self._state_lock:   # a deliberate close is not a connection loss: no warning
            self._connected = False

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver queued dead letters; True when none is left (failed ones stay queued)."""
        if not self._dlq:
            return True
        deadline = time.monotonic() + timeout_s
        while self._dlq and time.monotonic() < deadline:
            self._send_dead_letters()
            self._flush_producer(max(0.1, deadline - time.monotonic()))
            self._dlq = self._undelivered()
            if self._dlq:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if self._dlq:
            log.warning("%d dead letters not yet delivered", len(self._dlq))
        return not self._dlq

    def _poll_outcome(self, error: object | None) -> None:
        """Log a failing poll once, and its recovery once (a broker outage polls every 0.5 s)."""
        if error is not None:
            if not self._poll_failing:
                log.warning("poll failed, will retry: %s", error)
                self._poll_failing = True
        elif self._poll_failing:
            log.info("poll recovered")
            self._poll_failing = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the client-specific steps ------------------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def _close_producer(self, producer: Any, timeout_s: float) -> None:
        raise NotImplementedError

    def _close_consumer(self, consumer: Any, timeout_s: float) -> None:
        raise NotImplementedError

    def _flush_producer(self, timeout_s: float) -> None:
        raise NotImplementedError

    def _undelivered(self) -> list[Any]:
        """The queued dead letters not yet delivered (failed ones queued again)."""
        raise NotImplementedError
