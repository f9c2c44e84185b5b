"""Broker seam throughput against an embedded tansu broker.

    python bench/broker_throughput.py [--records 200000] [--partitions 1] [--max-records 10000]

Produces N JSON prediction records with 20 numeric features (KafkaProducerSink), then reads them
all, from the same topic, with KafkaBroker.poll (kafka-python group consumer, the agent's default
path), ConfluentBroker.poll (confluent-kafka, the optional backend behind the same seam) and, as
each client's ceiling, a bare consumer on assign() (no group). Records are counted by reading
them. Prints one table and the load average (the machines are shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ingest.broker import Broker
from agent.ingest.kafka_python import KafkaBroker, KafkaProducerSink  # noqa: E402
from agent.ingest.confluent import ConfluentBroker  # noqa: E402
from agent.ingest.embedded import EmbeddedBroker  # noqa: E402


def make_values(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 20)).round(6)
    names = [f"f{j}" for j in range(20)]
    return [orjson.dumps({"prediction_id": f"p{i}", "model": "bench", "model_version": "1",
                          "timestamp": 1_760_000_000 + i,
                          "features": dict(zip(names, feats[i].tolist(), strict=True)),
                          "prediction": int(feats[i, 0] > 0), "score": 0.5})
            for i in range(n)]


def bench_produce(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> float:
    start = time.perf_counter()
    with KafkaProducerSink(bootstrap) as sink:
        for i, v in enumerate(values):
            sink.send(topic, f"p{i}".encode(), v, partition=i % partitions)
    return time.perf_counter() - start


def bench_seam(bootstrap: str, topic: str, n: int, max_records: int,
               backend: type[Broker] = KafkaBroker) -> tuple[float, float]:
    """(seconds to first records incl. group join, seconds from first record to the last)."""
    start = time.perf_counter()
    with backend(bootstrap, [topic], group_id=f"bench-{time.time_ns()}") as kb:  # type: ignore[call-arg]
        got, first = 0, None
        while got < n:
            batches = kb.poll(max_records=max_records, timeout_s=1.0)
            if batches and first is None:
                first = time.perf_counter()
            got += sum(len(b) for b in batches)
        end = time.perf_counter()
    assert first is not None
    return first - start, end - first


def bench_bare(bootstrap: str, topic: str, n: int, partitions: int, max_records: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20,
                             max_poll_records=max_records)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got, first = 0, None
    while got < n:
        records = consumer.poll(timeout_ms=1000, max_records=max_records)
        if records and first is None:
            first = time.perf_counter()
        got += sum(len(r) for r in records.values())
    end = time.perf_counter()
    consumer.close()
    assert first is not None
    return end - first


def bench_bare_confluent(bootstrap: str, topic: str, n: int, partitions: int,
                         max_records: int) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bare",
                         "enable.auto.commit": False, "fetch.max.bytes": 64 << 20,
                         "max.partition.fetch.bytes": 16 << 20})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, first = 0, None
    while got < n:
        msgs = consumer.consume(num_messages=max_records, timeout=1.0)
        if msgs and first is None:
            first = time.perf_counter()
        got += sum(1 for m in msgs if m.error() is None)
    end = time.perf_counter()
    consumer.close()
    assert first is not None
    return end - first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--max-records", type=int, default=10_000)
    args = ap.parse_args()
    try:
        import crc32c  # noqa: F401
        crc = "crc32c"
    except ImportError:
        crc = "pure-python CRC (install crc32c!)"

    load_before = os.getloadavg()
    values = make_values(args.records)
    size = sum(map(len, values)) / len(values)
    with EmbeddedBroker() as tansu:
        topic = "bench.predictions"
        tansu.create_topics([topic], partitions=args.partitions)
        t_prod = bench_produce(tansu.bootstrap, topic, values, args.partitions)
        t_join, t_seam = bench_seam(tansu.bootstrap, topic, args.records, args.max_records)
        t_bare = bench_bare(tansu.bootstrap, topic, args.records, args.partitions, args.max_records)
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            confluent = None
        else:
            confluent = (*bench_seam(tansu.bootstrap, topic, args.records, args.max_records,
                                     ConfluentBroker),
                         bench_bare_confluent(tansu.bootstrap, topic, args.records,
                                              args.partitions, args.max_records))

    n = args.records
    print(f"tansu embedded (memory), {n:,} records x {size:.0f} B, {args.partitions} partition(s), "
          f"max_records={args.max_records}, {crc}")
    print(f"{'path':<44}{'seconds':>10}{'records/s':>14}")
    rows = [("KafkaProducerSink.send + flush", t_prod, n / t_prod),
            ("KafkaBroker group join -> first records", t_join, None),
            ("KafkaBroker.poll (group, -> RecordBatch)", t_seam, n / t_seam),
            ("peer: bare KafkaConsumer.poll (assign)", t_bare, n / t_bare)]
    if confluent is not None:
        c_join, c_seam, c_bare = confluent
        rows += [("ConfluentBroker group join -> first records", c_join, None),
                 ("ConfluentBroker.poll (group, -> RecordBatch)", c_seam, n / c_seam),
                 ("peer: bare confluent Consumer.consume", c_bare, n / c_bare)]
    for name, secs, rate in rows:
        print(f"{name:<44}{secs:>10.2f}{(f'{rate:,.0f}' if rate else '-'):>14}")
    if confluent is None:
        print("ConfluentBroker: confluent-kafka not installed (pip install confluent-kafka)")

    def fmt(load: tuple[float, float, float]) -> str:
        return ", ".join(f"{x:.2f}" for x in load)

    print(f"load average (1, 5, 15 min) on {os.cpu_count()} CPUs: before {fmt(load_before)}, "
          f"after {fmt(os.getloadavg())}")


if __name__ == "__main__":
    main()
