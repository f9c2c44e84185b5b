"""`Broker` on kafka-python 3.0: a group consumer plus a producer for dead letters.

Install `crc32c` with it (record CRC checks are otherwise pure Python and dominate fetch time).
kafka-python decodes every record of a fetched batch in Python; for wide records at high
rates pick `kafka.client: confluent` (agent.ingest.confluent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Self

import numpy as np

from agent.ingest.broker import BrokerCommon, RecordBatch, TopicPartitionKey

log = logging.getLogger(__name__)

_OFFSET, _TIMESTAMP, _KEY, _VALUE = map(attrgetter, ("offset", "timestamp", "key", "value"))

# Consumer settings chosen for batch throughput and a fast group join (first join takes about
# half of session_timeout_ms with kafka-python 3.0). Callers' client_options override them.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 60_000,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "fetch_min_bytes": 1,
    "fetch_max_wait_ms": 200,
    "max_poll_records": 10_000,
    "reconnect_backoff_ms": 100,
    "reconnect_backoff_max_ms": 2000,
    "request_timeout_ms": 15_000,
}

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": 1,
    "linger_ms": 20,
    "batch_size": 1024 * 1024,
    "max_request_size": 16 * 1024 * 1024,
    "reconnect_backoff_ms": 100,
    "reconnect_backoff_max_ms": 2000,
    "request_timeout_ms": 15_000,
}

# Options that only make sense for one side; everything else (security_protocol, sasl_*, ssl_*,
# client_id, ...) is passed to both the consumer and the DLQ producer.
_CONSUMER_ONLY = set(CONSUMER_DEFAULTS) | {"group_instance_id", "isolation_level",
                                            "partition_assignment_strategy", "exclude_internal_topics",
                                            "check_crcs", "default_offset_commit_callback"}
_PRODUCER_ONLY = set(PRODUCER_DEFAULTS) - {"reconnect_backoff_ms", "reconnect_backoff_max_ms",
                                           "request_timeout_ms"}


def _common_options(options: dict[str, Any], drop: set[str]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in drop}


@dataclass(slots=True)
class _DeadLetter:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    future: Any = field(default=None)


class KafkaBroker(BrokerCommon):
    """`Broker` on kafka-python: a group consumer plus a producer for dead letters."""

    _dead_letter_type = _DeadLetter

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        broker = self
        self._closing = False

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                broker._revoked({(tp.topic, tp.partition) for tp in revoked})

            def on_partitions_assigned(self, assigned: Any) -> None:
                broker._assigned({(tp.topic, tp.partition) for tp in assigned})

        options = {**CONSUMER_DEFAULTS,
                   **_common_options(self.client_options, _PRODUCER_ONLY)}
        self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                       group_id=self.group_id, **options)
        self._consumer.subscribe(self.topics, listener=_Listener())
        self._update_connected()

    def _close_producer(self, producer: Any, timeout_s: float) -> None:
        producer.close(timeout=timeout_s)

    def _close_consumer(self, consumer: Any, timeout_s: float) -> None:
        consumer.close(autocommit=False, timeout_ms=int(max(100, timeout_s * 1000)))

    # rebalance -----------------------------------------------------------------------------

    def _revoked(self, partitions: set[TopicPartitionKey]) -> None:
        if self.on_revoke is not None and partitions and not self._closing:
            try:
                self.on_revoke(partitions)
            except BaseException as exc:  # kafka-python would swallow it: re-raise from poll()
                self._callback_error = exc

    def _assigned(self, partitions: set[TopicPartitionKey]) -> None:
        log.info("assigned %s", sorted(partitions))
        if self.on_assign is None or not partitions:
            return
        try:
            offsets = self.on_assign(partitions)
            self._seek(offsets, allowed=partitions)
        except BaseException as exc:
            self._callback_error = exc

    # reading -------------------------------------------------------------------------------

    def poll(self, max_records: int, timeout_s: float) -> list[RecordBatch]:
        """Up to `max_records` records as one batch per partition; [] on timeout or broker loss.

        Errors raised by `on_assign` / `on_revoke` are re-raised here.
        """
        from kafka.errors import KafkaError

        consumer = self._require_started()
        try:
            raw = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            self._poll_outcome(repr(exc))
            raw = {}
        else:
            self._poll_outcome(None)
        finally:
            self._update_connected()
        if self._callback_error is not None:
            exc, self._callback_error = self._callback_error, None
            raise exc
        batches = []
        for tp, records in raw.items():
            if not records:
                continue
            n = len(records)
            batches.append(RecordBatch(
                topic=tp.topic, partition=tp.partition,
                offsets=np.fromiter(map(_OFFSET, records), dtype=np.int64, count=n),
                timestamps_ms=np.fromiter(map(_TIMESTAMP, records), dtype=np.int64, count=n),
                keys=list(map(_KEY, records)), values=list(map(_VALUE, records))))
        return batches

    def assignment(self) -> set[TopicPartitionKey]:
        return {(tp.topic, tp.partition) for tp in self._require_started().assignment()}

    def seek(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Set the next offset to read for assigned partitions; ValueError for others."""
        self._seek(offsets, allowed=self.assignment())

    def _seek(self, offsets: dict[TopicPartitionKey, int], allowed: set[TopicPartitionKey]) -> None:
        from kafka import TopicPartition

        unknown = sorted(set(offsets) - allowed)
        if unknown:
            raise ValueError(f"cannot seek partitions not assigned to this consumer: {unknown}")
        for (topic, partition), offset in offsets.items():
            if offset < 0:
                raise ValueError(f"offset for {topic}[{partition}] must be >= 0, got {offset}")
            self._consumer.seek(TopicPartition(topic, partition), int(offset))

    def commit(self, offsets: dict[TopicPartitionKey, int], timeout_s: float | None = None) -> bool:
        """Synchronously commit exactly these next-offsets; False (logged) if the broker refused
        or ``timeout_s`` passed.

        The agent's checkpoint is the source of truth; the group commit is a hint.
        """
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import KafkaError

        if not offsets:
            return True
        consumer = self._require_started()
        try:
            consumer.commit({TopicPartition(t, p): OffsetAndMetadata(int(o), "", -1)
                             for (t, p), o in offsets.items()},
                            timeout_ms=None if timeout_s is None else int(timeout_s * 1000))
        except KafkaError as exc:
            log.warning("commit of %d partitions failed: %r", len(offsets), exc)
            return False
        return True

    def lag(self) -> dict[TopicPartitionKey, int]:
        """Records behind the end, per assigned partition whose position is known.

        The end is the larger of ListOffsets and the last fetch's high watermark (tansu's
        ListOffsets has been seen trailing the true end by one batch). {} if the broker is down.
        """
        from kafka.errors import KafkaError

        consumer = self._require_started()
        tps = list(consumer.assignment())
        if not tps:
            return {}
        try:
            ends = consumer.end_offsets(tps, timeout_ms=2000)
        except KafkaError as exc:
            log.debug("end_offsets failed: %r", exc)
            return {}
        out: dict[TopicPartitionKey, int] = {}
        for tp in tps:
            try:
                position = consumer.position(tp, timeout_ms=2000)
            except KafkaError:
                continue
            if position is None:
                continue
            end = max(ends.get(tp) or 0, consumer.highwater(tp) or 0)
            out[(tp.topic, tp.partition)] = max(0, end - position)
        return out

    # health --------------------------------------------------------------------------------

    def connected(self) -> bool:
        """Whether the consumer holds a live connection to a broker (cheap, any thread)."""
        return self._connected

    def _update_connected(self) -> None:
        self._set_connected(_client_connected(self._consumer))

    # dead letters --------------------------------------------------------------------------

    def _send_dead_letters(self) -> None:
        from kafka.errors import KafkaError

        if self._producer is None:
            self._producer = self._make_producer()
        for item in self._dlq:
            if item.future is not None:
                continue
            try:
                item.future = self._producer.send(item.topic, key=item.key, value=item.value,
                                                  headers=item.headers)
            except KafkaError as exc:  # e.g. no metadata while the broker is down: retry later
                log.debug("dead letter send deferred: %r", exc)
                return

    def _make_producer(self) -> Any:
        from kafka import KafkaProducer

        options = {**PRODUCER_DEFAULTS, "acks": "all", "linger_ms": 5, "max_block_ms": 2000,
                   "retries": 5, **_common_options(self.client_options, _CONSUMER_ONLY)}
        return KafkaProducer(bootstrap_servers=self.bootstrap_servers, **options)

    def _flush_producer(self, timeout_s: float) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError and friends
            log.debug("dead letter flush: %r", exc)

    def _undelivered(self) -> list[Any]:
        remaining = []
        for item in self._dlq:
            if item.future is None or not item.future.is_done:
                remaining.append(item)
            elif item.future.failed():
                item.future = None
                remaining.append(item)
        return remaining

    def _require_started(self) -> Any:
        if self._consumer is None:
            raise RuntimeError("KafkaBroker.start() was not called (or close() was)")
        return self._consumer


def _client_connected(consumer: Any) -> bool:
    """True when any of the consumer's broker connections is up (kafka-python 3.0 internals)."""
    if consumer is None:
        return False
    try:
        conns = consumer._client._manager._conns
        return any(getattr(c, "connected", False) for c in list(conns.values()))
    except AttributeError:  # a kafka-python without the 3.0 network manager
        return bool(consumer.bootstrap_connected())


class KafkaProducerSink:
    """Batched producer for `driftwarden replay` and benchmarks."""

    def __init__(self, bootstrap_servers: str | list[str],
                 client_options: dict[str, Any] | None = None) -> None:
        from kafka import KafkaProducer

        options = {**PRODUCER_DEFAULTS, **_common_options(dict(client_options or {}), _CONSUMER_ONLY)}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **options)

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
             timestamp_ms: int | None = None) -> None:
        self._producer.send(topic, key=key, value=value, partition=partition,
                            timestamp_ms=timestamp_ms)

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout=timeout_s)
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
