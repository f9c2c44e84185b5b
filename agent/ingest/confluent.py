"""`Broker` on confluent-kafka (librdkafka): the optional faster backend.

Same contract as `agent.ingest.kafka_python.KafkaBroker` (read its docstrings); only the client differs.
confluent-kafka is imported lazily, on `start()`: the agent runs without it unless the config
selects it (`pip install confluent-kafka`).

Differences worth knowing (everything else matches `KafkaBroker`):

- `client_options` take the agent config's kafka-python names (`security_protocol`,
  `sasl_plain_username`, `ssl_cafile`, ...) and translate them to librdkafka's; dotted librdkafka
  names pass through; an underscore name with no translation is a `ValueError` naming the key.
- Only eager assignors (`range`, `roundrobin`, the librdkafka default) are accepted: partitions
  and their on_assign offsets are set with `assign()` inside the rebalance callback.
- `connected()` follows librdkafka's own broker states (statistics every second, the
  `_ALL_BROKERS_DOWN` error, records arriving); it may lag a reconnect by about a second.
- `close()` does not call `on_revoke` (like kafka-python's close); librdkafka's own revoke on
  close is absorbed.
- `lag()` returns {} at once while the broker is known to be down, and skips partitions whose
  position is not known yet (nothing fetched since the assignment).

Threading: like `KafkaBroker`, driven from one thread; only `connected()` is safe elsewhere.
Rebalance, error and statistics callbacks run inside `poll()` (and `commit()`), on that thread.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from types import ModuleType
from typing import Any

import numpy as np

from agent.ingest.broker import BrokerCommon, OnAssign, OnRevoke, RecordBatch, TopicPartitionKey
from agent.ingest.librdkafka import (  # INSTALL_HINT, translate_client_options: re-exported
    INSTALL_HINT,
    CONSUMER_DEFAULTS,
    PRODUCER_DEFAULTS,
    _CONSUMER_ONLY,
    _PRODUCER_ONLY,
    _START_TIMEOUT_S,
    translate_client_options,
    _redacted,
)

log = logging.getLogger(__name__)

_second = operator.itemgetter(1)


def _import_confluent() -> ModuleType:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ImportError("kafka.client 'confluent' needs the confluent-kafka package, which is "
                          f"not installed: {INSTALL_HINT}") from exc
    return confluent_kafka


class _DeadLetter:
    __slots__ = ("topic", "key", "value", "headers", "state")

    def __init__(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes]]) -> None:
        self.topic, self.key, self.value, self.headers = topic, key, value, headers
        self.state = "queued"   # queued -> in_flight -> delivered | queued (failed: retried)


class ConfluentBroker(BrokerCommon):
    """`Broker` on confluent-kafka: a group consumer plus a producer for dead letters."""

    _dead_letter_type = _DeadLetter

    def __init__(self, bootstrap_servers: str | list[str], topics: list[str], group_id: str,
                 client_options: dict[str, Any] | None = None, on_assign: OnAssign | None = None,
                 on_revoke: OnRevoke | None = None, dlq_max_value_bytes: int = 1024 * 1024) -> None:
        super().__init__(bootstrap_servers, topics, group_id, client_options, on_assign, on_revoke,
                         dlq_max_value_bytes)
        self._options = translate_client_options(self.client_options)   # fail early
        strategy = str(self._options.get("partition.assignment.strategy", ""))
        if "cooperative" in strategy:
            raise ValueError("ConfluentBroker supports eager assignors only (range, roundrobin), "
                             f"got partition.assignment.strategy={strategy!r}")
        self._ck: ModuleType | None = None
        self._last_error: str | None = None

    @property
    def _bootstrap(self) -> str:
        b = self.bootstrap_servers
        return b if isinstance(b, str) else ",".join(b)

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Create the consumer, subscribe, and wait (up to 30 s) until a broker answers.

        Raises ConnectionError when no broker answers in time, like kafka-python's bootstrap.
        """
        ck = self._ck = _import_confluent()
        common = {k: v for k, v in self._options.items() if k not in _PRODUCER_ONLY}
        conf = {**CONSUMER_DEFAULTS, **common,
                "bootstrap.servers": self._bootstrap, "group.id": self.group_id,
                "error_cb": self._on_error, "stats_cb": self._on_stats,
                "logger": _LIBRDKAFKA_LOG}
        try:
            consumer = ck.Consumer(conf)
        except ck.KafkaException as exc:
            raise ValueError(f"invalid kafka client options {_redacted(common)}: {exc}") from None
        self._closing = False
        try:
            consumer.list_topics(timeout=_START_TIMEOUT_S)   # bootstrap check, like kafka-python
        except ck.KafkaException as exc:
            consumer.close()
            raise ConnectionError(f"unable to bootstrap from {self._bootstrap} in "
                                  f"{_START_TIMEOUT_S:.0f} s: {exc.args[0]}") from None
        consumer.subscribe(self.topics, on_assign=self._on_assign_cb,
                           on_revoke=self._on_revoke_cb)
        self._consumer = consumer
        self._set_connected(True)

    def _close_producer(self, producer: Any, timeout_s: float) -> None:
        if producer.flush(timeout_s):
            producer.purge()           # don't let librdkafka hold the process on them
            producer.flush(0)

    def _close_consumer(self, consumer: Any, timeout_s: float) -> None:
        consumer.close()               # librdkafka revokes on close: absorbed (``_closing``)

    # rebalance (eager protocol: the whole assignment is handed over each time) ---------------

    def _on_assign_cb(self, consumer: Any, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        log.info("assigned %s", sorted(keys))
        if self.on_assign is None or not keys:
            return      # confluent-kafka assigns them at the committed offsets
        try:
            offsets = self.on_assign(keys)
            _check_offsets(offsets, allowed=keys)
            for tp in partitions:
                offset = offsets.get((tp.topic, tp.partition))
                if offset is not None:
                    tp.offset = int(offset)
            consumer.assign(partitions)    # fetching starts at these offsets, none earlier
        except BaseException as exc:  # noqa: BLE001 - re-raised from poll()
            self._callback_error = exc    # (then assigned at the committed offsets)

    def _on_revoke_cb(self, consumer: Any, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        if self._closing or self.on_revoke is None or not keys:
            return
        try:
            self.on_revoke(keys)
        except BaseException as exc:  # noqa: BLE001 - re-raised from poll()
            self._callback_error = exc

    # reading -------------------------------------------------------------------------------

    def poll(self, max_records: int, timeout_s: float) -> list[RecordBatch]:
        """Up to `max_records` records as one batch per partition; [] on timeout or broker loss.

        Errors raised by `on_assign` / `on_revoke` are re-raised here.
        """
        consumer = self._require_started()
        ck = self._ck
        assert ck is not None
        error: Any = None
        try:
            msgs = consumer.consume(num_messages=max(1, min(int(max_records), 1_000_000)),
                                    timeout=max(0.0, timeout_s))
        except ck.KafkaException as exc:
            msgs, error = [], exc.args[0] if exc.args else exc
        if msgs:
            errors = list(map(type(msgs[0]).error, msgs))
            if errors.count(None) != len(msgs):
                error = next(e for e in errors if e is not None)
                msgs = [m for m, e in zip(msgs, errors) if e is None]
        self._poll_outcome(error)
        if msgs:
            self._set_connected(True)
        if self._callback_error is not None:
            exc, self._callback_error = self._callback_error, None
            raise exc
        return _to_batches(msgs) if msgs else []

    def assignment(self) -> set[TopicPartitionKey]:
        return {(tp.topic, tp.partition) for tp in self._require_started().assignment()}

    def seek(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Set the next offset to read for assigned partitions; ValueError for others."""
        consumer = self._require_started()
        ck = self._ck
        assert ck is not None
        _check_offsets(offsets, allowed=self.assignment())
        for (topic, partition), offset in offsets.items():
            tp = ck.TopicPartition(topic, partition, int(offset))
            for attempt in range(50):    # "Erroneous state" until the partition's fetcher runs
                try:
                    consumer.seek(tp)
                    break
                except ck.KafkaException as exc:
                    if exc.args[0].code() != ck.KafkaError._STATE or attempt == 49:
                        raise
                    time.sleep(0.02)

    def commit(self, offsets: dict[TopicPartitionKey, int], timeout_s: float | None = None) -> bool:
        """Synchronously commit exactly these next-offsets; False (logged) if the broker refused.

        The agent's checkpoint is the source of truth; the group commit is a hint.
        """
        if not offsets:
            return True
        consumer = self._require_started()
        ck = self._ck
        assert ck is not None
        tps = [ck.TopicPartition(t, p, int(o)) for (t, p), o in offsets.items()]
        try:
            if timeout_s is not None and not self.connected():
                return False  # librdkafka's synchronous commit has no timeout of its own
            result = consumer.commit(offsets=tps, asynchronous=False)
        except ck.KafkaException as exc:
            log.warning("commit of %d partitions failed: %s", len(offsets), exc.args[0])
            return False
        failed = [tp for tp in result or [] if tp.error is not None]
        if failed:
            log.warning("commit failed for %s: %s", [(tp.topic, tp.partition) for tp in failed],
                        failed[0].error)
            return False
        return True

    def lag(self) -> dict[TopicPartitionKey, int]:
        """Records behind the end, per assigned partition whose position is known.

        The end is the larger of ListOffsets and the last fetch's high watermark (tansu's
        ListOffsets has been seen trailing the true end by one batch). {} if the broker is down.
        """
        consumer = self._require_started()
        ck = self._ck
        assert ck is not None
        tps = consumer.assignment()
        if not tps or not self.connected():
            return {}
        out: dict[TopicPartitionKey, int] = {}
        try:
            positions = consumer.position(tps)
            for tp in positions:
                if tp.offset < 0 or tp.error is not None:
                    continue          # nothing fetched since the assignment
                queried = consumer.get_watermark_offsets(tp, timeout=2.0)
                if queried is None:
                    return {}
                cached = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                end = max(queried[1], cached[1], 0)
                out[(tp.topic, tp.partition)] = max(0, end - tp.offset)
        except ck.KafkaException as exc:
            log.debug("watermark query failed: %s", exc.args[0])
            return {}
        return out

    # health --------------------------------------------------------------------------------

    def connected(self) -> bool:
        """Whether the consumer holds a live connection to a broker (cheap, any thread)."""
        return self._connected

    def _on_error(self, err: Any) -> None:
        ck = self._ck
        assert ck is not None
        code = err.code()
        if code == ck.KafkaError._ALL_BROKERS_DOWN:
            self._set_connected(False)
        elif code not in (ck.KafkaError._TRANSPORT, ck.KafkaError._RESOLVE):
            text = str(err)
            if text != self._last_error:      # e.g. authentication or TLS failures: once each
                self._last_error = text
                log.warning("kafka client error: %s", text)
        if err.fatal():
            log.error("fatal kafka client error: %s", err)

    def _on_stats(self, stats_json: str) -> None:
        try:
            brokers = json.loads(stats_json).get("brokers", {})
        except ValueError:
            return
        self._set_connected(any(b.get("state") == "UP" for b in brokers.values()))

    # dead letters --------------------------------------------------------------------------

    def _send_dead_letters(self) -> None:
        if self._producer is None:
            self._producer = self._make_producer()
        ck = self._ck
        assert ck is not None
        for item in self._dlq:
            if item.state != "queued":
                continue
            try:
                self._producer.produce(item.topic, key=item.key, value=item.value,
                                       headers=item.headers, on_delivery=_delivery_cb(item))
            except (BufferError, ck.KafkaException) as exc:  # queue full, ...: retry later
                log.debug("dead letter send deferred: %r", exc)
                break
            item.state = "in_flight"
        self._producer.poll(0)

    def _make_producer(self) -> Any:
        ck = self._ck or _import_confluent()
        self._ck = ck
        common = {k: v for k, v in self._options.items() if k not in _CONSUMER_ONLY}
        conf = {**PRODUCER_DEFAULTS, **common, "bootstrap.servers": self._bootstrap,
                "error_cb": _log_producer_error, "logger": _LIBRDKAFKA_LOG}
        try:
            return ck.Producer(conf)
        except ck.KafkaException as exc:
            raise ValueError(f"invalid kafka client options {_redacted(common)}: {exc}") from None

    def _flush_producer(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)

    def _undelivered(self) -> list[Any]:
        return [item for item in self._dlq if item.state != "delivered"]

    def _require_started(self) -> Any:
        if self._consumer is None:
            raise RuntimeError("ConfluentBroker.start() was not called (or close() was)")
        return self._consumer


def _check_offsets(offsets: dict[TopicPartitionKey, int], allowed: set[TopicPartitionKey]) -> None:
    unknown = sorted(set(offsets) - allowed)
    if unknown:
        raise ValueError(f"cannot seek partitions not assigned to this consumer: {unknown}")
    for (topic, partition), offset in offsets.items():
        if offset < 0:
            raise ValueError(f"offset for {topic}[{partition}] must be >= 0, got {offset}")


def _delivery_cb(item: _DeadLetter) -> Any:
    def done(err: Any, msg: Any) -> None:
        if err is None:
            item.state = "delivered"
        else:
            log.debug("dead letter delivery failed, will retry: %s", err)
            item.state = "queued"
    return done


class _LibrdkafkaLog:
    """librdkafka's log lines into Python logging, without the reconnect noise.

    A dead broker makes librdkafka log every failed connect (FAIL, at error level); the broker
    state change itself is logged once by `ConfluentBroker`, so those lines go to DEBUG, and a
    line identical to the previous one is dropped to DEBUG as well.
    """

    QUIET = frozenset({"FAIL", "CONNECT", "DISCONNECT", "BROKERFAIL", "REQTMOUT", "ERROR"})

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._last: tuple[Any, ...] | None = None

    def log(self, level: int, msg: str, *args: Any) -> None:
        facility = args[0] if args else ""
        if facility in self.QUIET or args == self._last:
            level = min(level, logging.DEBUG)
        self._last = args
        self._logger.log(level, msg, *args)


_LIBRDKAFKA_LOG = _LibrdkafkaLog(log.getChild("librdkafka"))


def _log_producer_error(err: Any) -> None:
    log.debug("dead-letter producer: %s", err)


def _to_batches(msgs: list[Any]) -> list[RecordBatch]:
    """confluent Messages (error-free) -> one RecordBatch per partition, in offset order.

    Uses `map` over the C methods (no per-record Python frames): about 1.5 M records/s here.
    """
    message = type(msgs[0])
    topics = list(map(message.topic, msgs))
    partitions = list(map(message.partition, msgs))
    n = len(msgs)
    if topics.count(topics[0]) == n and partitions.count(partitions[0]) == n:
        groups = {(topics[0], partitions[0]): msgs}     # the usual case: one partition
    else:
        groups = {}
        for key, m in zip(zip(topics, partitions), msgs):
            group = groups.get(key)
            if group is None:
                groups[key] = [m]
            else:
                group.append(m)
    batches = []
    for (topic, partition), group in groups.items():
        count = len(group)
        offsets = np.fromiter(map(message.offset, group), dtype=np.int64, count=count)
        if count > 1 and not bool(np.all(offsets[1:] > offsets[:-1])):   # defensive: never seen
            order = np.argsort(offsets, kind="stable")
            group = [group[i] for i in order]
            offsets = offsets[order]
        batches.append(RecordBatch(
            topic=topic, partition=partition, offsets=offsets,
            timestamps_ms=np.fromiter(map(_second, map(message.timestamp, group)),
                                      dtype=np.int64, count=count),
            keys=list(map(message.key, group)),
            values=list(map(message.value, group))))
    return batches
