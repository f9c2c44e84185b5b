"""End-to-end throughput through a real broker: records produced to tansu, consumed by one agent.

    python bench/e2e_throughput.py [--events 100000] [--features 10,50]

For each feature count: an embedded tansu broker, one-partition topics, N prediction records
and labels for half of them produced up front; then, side by side on the same topics:

- ``bare consumer``: agent.ingest.broker.KafkaBroker polling every record and doing nothing with it
  (kafka-python's ceiling as the agent runs it: the agent cannot be faster than this);
- ``agent (kafka-python)`` and ``agent (confluent)``: the real Agent (decode, validate, join,
  windows, drift verdicts, metrics snapshot, checkpoints, offset commits) consuming the same
  records in its own consumer group, with each Kafka client behind the Broker seam.

Rates are counted from the first record received (the consumer-group join, ~3 s with tansu, is
reported separately). Single agent process; the broker runs on the same 2-core machine and
competes with the agent for it, so the agent rows also give ``cpu s``: the agent process's own
CPU time (main thread + the Kafka client's threads; tansu is another process) and records per
CPU second, the rate one agent sustains per core when the broker runs elsewhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import MODEL, encode_polls, feature_names, generate  # noqa: E402

from agent.ingest.kafka_python import KafkaBroker, KafkaProducerSink  # noqa: E402
from agent.config import build_config  # noqa: E402
from agent.ingest.embedded import EmbeddedBroker  # noqa: E402
from agent.service import Agent  # noqa: E402


def produce(bootstrap: str, polls: list, topics: dict[str, str]) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    with KafkaProducerSink(bootstrap) as sink:
        for poll in polls:
            for b in poll:
                for k, v in zip(b.keys, b.values):
                    sink.send(topics[b.topic], k, v)
                    n += 1
        sink.flush()
    return n, time.perf_counter() - t0


def bare(bootstrap: str, topics: list[str], total: int) -> tuple[float, float]:
    consumer = KafkaBroker(bootstrap, topics, f"bare-{time.time_ns()}")
    consumer.start()
    t_start = time.perf_counter()
    seen, t_first = 0, None
    while seen < total:
        for b in consumer.poll(max_records=5000, timeout_s=0.5):
            if t_first is None:
                t_first = time.perf_counter()
            seen += len(b)
    elapsed = time.perf_counter() - (t_first or t_start)
    consumer.close()
    return (t_first or t_start) - t_start, elapsed


def agent_run(bootstrap: str, topics: dict[str, str], ref: Path, nf: int, total_preds: int, total_labels: int,
              state: Path, client: str = "kafka-python") -> tuple[float, float, float]:
    numeric, categorical = feature_names(nf)
    cfg = build_config({
        "kafka": {"bootstrap_servers": bootstrap, "predictions_topic": topics["predictions"],
                  "labels_topic": topics["labels"], "group_id": f"agent-{time.time_ns()}",
                  "client": client},
        "http": {"host": "127.0.0.1", "port": 0}, "state_dir": str(state),
        "models": {MODEL: {"task": "binary_classification", "reference": str(ref), "target": "y",
                           "prediction": "y_pred", "score": "y_proba", "features": numeric + categorical,
                           "window": {"size": 10_000}, "segments": categorical[:1]}},
    })
    agent = Agent(cfg)
    agent.start()
    ev = agent.state.counters.events
    t_start = time.perf_counter()
    marks: dict[str, float] = {}

    def done() -> bool:
        if "first" not in marks and ev[(MODEL, "predictions", "ok")] + ev[(MODEL, "labels", "ok")] > 0:
            marks["first"], marks["cpu"] = time.perf_counter(), time.process_time()
        return ev[(MODEL, "predictions", "ok")] >= total_preds and ev[(MODEL, "labels", "ok")] >= total_labels

    agent.loop(until=done)
    t_end, cpu_end = time.perf_counter(), time.process_time()
    agent.stop()
    first = marks.get("first", t_start)
    return first - t_start, t_end - first, cpu_end - marks.get("cpu", cpu_end)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="prediction records (labels add 50%%)")
    ap.add_argument("--features", default="10,50")
    args = ap.parse_args()
    print(f"driftwarden end to end through tansu: {args.events:,} predictions + 50% labels, one partition per topic")
    print(f"os.cpu_count()={os.cpu_count()}, os.getloadavg() before={tuple(round(x, 2) for x in os.getloadavg())}")
    header = (f"{'features':>8}  {'path':<23}{'records':>10}{'join s':>8}{'seconds':>9}{'records/s':>11}"
              f"{'cpu s':>8}{'per cpu s':>11}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "tansu.log") as broker:
        for nf in [int(x) for x in args.features.split(",")]:
            ref = Path(tmp) / f"ref_{nf}.parquet"
            generate(20_000, nf, seed=1).to_parquet(ref)
            polls = encode_polls(generate(args.events, nf, seed=2), 5_000, seed=3)
            topics = {"predictions": f"p{nf}-{time.time_ns()}", "labels": f"l{nf}-{time.time_ns()}"}
            broker.create_topics(list(topics.values()), partitions=1)
            n_labels = sum(len(b) for poll in polls for b in poll if b.topic == "labels")
            total, secs = produce(broker.bootstrap, polls, topics)
            print(f"{nf:>8}  {'produce':<23}{total:>10,}{'':>8}{secs:>9.2f}{total / secs:>11,.0f}")
            join, secs = bare(broker.bootstrap, list(topics.values()), total)
            print(f"{nf:>8}  {'bare kafka-python':<23}{total:>10,}{join:>8.1f}{secs:>9.2f}{total / secs:>11,.0f}")
            for client in ("kafka-python", "confluent"):
                join, secs, cpu = agent_run(broker.bootstrap, topics, ref, nf, args.events, n_labels,
                                            Path(tmp) / f"state{nf}{client}", client)
                name = f"agent ({client})"
                print(f"{nf:>8}  {name:<23}{total:>10,}{join:>8.1f}{secs:>9.2f}{total / secs:>11,.0f}"
                      f"{cpu:>8.2f}{total / cpu:>11,.0f}")
    print(f"os.getloadavg() after={tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
