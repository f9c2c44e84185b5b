"""End-to-end throughput through a real broker: records produced to tansu, consumed by one agent.

    python bench/e2e_throughput.py [--events 100000] [--features 10,50]

For each feature count: an embedded tansu broker, one-partition topics, N prediction records
and labels for half of them produced up front; then, side by side on the same topics:

- ``bare kafka-python`` / ``bare confluent``: the project's Broker backend for that client
  (agent.ingest.kafka_python.KafkaBroker / agent.ingest.confluent.ConfluentBroker, built by
  agent.ingest.make_broker as the agent builds it, same max_records per poll) polling every record
  in its own consumer group and doing nothing with it (the client's ceiling as the agent runs it);
- ``bare kafka-python + json`` / ``bare confluent + json``: the same, decoding every record value
  with ``orjson.loads`` and nothing else (the peer of the project's target: with each client the
  agent's rate stays at least 0.5 of this one, in the same run);
- ``agent (kafka-python)`` and ``agent (confluent)``: the real Agent (decode, validate, join,
  windows, drift verdicts, metrics snapshot, checkpoints, offset commits) consuming the same
  records in its own consumer group, with each Kafka client behind the Broker seam.

Rates are counted from the first record received (the consumer-group join, ~3 s with tansu, is
reported separately); every consumer row polls with the same ``--poll-timeout`` (0.05 s by
default), so the last, partial poll adds at most that. Single agent process; the broker runs on the same 2-core machine and
competes with the agent for it, so every consumer row also gives ``cpu s``: this process's own
CPU time from the first record on (main thread + the Kafka client's threads; tansu is another
process) and records per CPU second, the rate one consumer sustains per core when the broker runs
elsewhere. After the table: agent / bare+json per client and feature count, against the 0.5 target.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
from throughput import MODEL, encode_polls, feature_names, generate  # noqa: E402

from agent.config import KafkaConfig, build_config  # noqa: E402
from agent.ingest import make_broker  # noqa: E402
from agent.ingest.embedded import EmbeddedBroker  # noqa: E402
from agent.ingest.kafka_python import KafkaProducerSink  # noqa: E402
from agent.service import Agent  # noqa: E402

CLIENTS = ("kafka-python", "confluent")
TARGET = 0.5           # agent / bare consumer of the same client that only JSON-decodes
MAX_POLL_RECORDS = KafkaConfig().max_poll_records   # what the agent asks for per poll (5000)


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


def bare(bootstrap: str, topics: list[str], total: int, client: str = "kafka-python",
         decode: bool = False, poll_timeout_s: float = 0.5) -> tuple[float, float, float]:
    """(join s, seconds, cpu s) for the client's Broker backend reading ``total`` records in its
    own group; with ``decode``, every record value goes through ``orjson.loads`` (nothing else)."""
    consumer = make_broker(client, bootstrap, topics, f"bare-{client}-{time.time_ns()}", {})
    consumer.start()
    loads, drain = orjson.loads, collections.deque(maxlen=0).extend
    t_start = time.perf_counter()
    seen, t_first, cpu_first = 0, None, 0.0
    while seen < total:
        for b in consumer.poll(max_records=MAX_POLL_RECORDS, timeout_s=poll_timeout_s):
            if t_first is None:
                t_first, cpu_first = time.perf_counter(), time.process_time()
            if decode:
                drain(map(loads, b.values))
            seen += len(b)
    t_end, cpu_end = time.perf_counter(), time.process_time()
    consumer.close()
    first = t_first or t_start
    return first - t_start, t_end - first, cpu_end - cpu_first if t_first else 0.0


def agent_run(bootstrap: str, topics: dict[str, str], ref: Path, nf: int, total_preds: int, total_labels: int,
              state: Path, client: str = "kafka-python", poll_timeout_s: float = 0.5) -> tuple[float, float, float]:
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
    ev = agent.counters.events
    t_start = time.perf_counter()
    marks: dict[str, float] = {}

    def done() -> bool:
        if "first" not in marks and ev[(MODEL, "predictions", "ok")] + ev[(MODEL, "labels", "ok")] > 0:
            marks["first"], marks["cpu"] = time.perf_counter(), time.process_time()
        return ev[(MODEL, "predictions", "ok")] >= total_preds and ev[(MODEL, "labels", "ok")] >= total_labels

    agent.loop(until=done, poll_timeout_s=poll_timeout_s)
    t_end, cpu_end = time.perf_counter(), time.process_time()
    agent.stop()
    first = marks.get("first", t_start)
    return first - t_start, t_end - first, cpu_end - marks.get("cpu", cpu_end)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="prediction records (labels add 50%%)")
    ap.add_argument("--features", default="10,50")
    ap.add_argument("--poll-timeout", type=float, default=0.05,
                    help="poll timeout of every consumer row, agent included (the agent's default is 0.5 s;\n"
                         "confluent's consume() waits out the whole timeout on the last, partial poll,\n"
                         "which would add it to a ~2 s run; a backlog is returned at once either way)")
    args = ap.parse_args()
    print(f"driftwarden end to end through tansu: {args.events:,} predictions + 50% labels, one partition per topic; "
          f"poll timeout {args.poll_timeout} s, max {MAX_POLL_RECORDS:,} records per poll")
    print(f"os.cpu_count()={os.cpu_count()}, os.getloadavg() before={tuple(round(x, 2) for x in os.getloadavg())}")
    w = 26
    header = (f"{'features':>8}  {'path':<{w}}{'records':>10}{'join s':>8}{'seconds':>9}{'records/s':>11}"
              f"{'cpu s':>8}{'per cpu s':>11}")
    print(header)
    print("-" * len(header))

    def row(nf: int, name: str, total: int, join: float | None, secs: float, cpu: float | None) -> None:
        print(f"{nf:>8}  {name:<{w}}{total:>10,}{'' if join is None else f'{join:.1f}':>8}{secs:>9.2f}"
              f"{total / secs:>11,.0f}" + ("" if not cpu else f"{cpu:>8.2f}{total / cpu:>11,.0f}"), flush=True)

    rates: dict[tuple[int, str], tuple[float, float]] = {}   # (nf, path) -> (records/s, per cpu s)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "tansu.log") as broker:
        for nf in [int(x) for x in args.features.split(",")]:
            ref = Path(tmp) / f"ref_{nf}.parquet"
            generate(20_000, nf, seed=1).to_parquet(ref)
            polls = encode_polls(generate(args.events, nf, seed=2), 5_000, seed=3)
            topics = {"predictions": f"p{nf}-{time.time_ns()}", "labels": f"l{nf}-{time.time_ns()}"}
            broker.create_topics(list(topics.values()), partitions=1)
            n_labels = sum(len(b) for poll in polls for b in poll if b.topic == "labels")
            total, secs = produce(broker.bootstrap, polls, topics)
            row(nf, "produce", total, None, secs, None)
            for client in CLIENTS:
                for decode in (False, True):
                    name = f"bare {client}" + (" + json" if decode else "")
                    join, secs, cpu = bare(broker.bootstrap, list(topics.values()), total, client, decode,
                                           args.poll_timeout)
                    row(nf, name, total, join, secs, cpu)
                    rates[(nf, name)] = (total / secs, total / cpu if cpu else float("nan"))
            for client in CLIENTS:
                join, secs, cpu = agent_run(broker.bootstrap, topics, ref, nf, args.events, n_labels,
                                            Path(tmp) / f"state{nf}{client}", client, args.poll_timeout)
                name = f"agent ({client})"
                row(nf, name, total, join, secs, cpu)
                rates[(nf, name)] = (total / secs, total / cpu if cpu else float("nan"))
    print()
    print(f"agent / bare consumer of the same client that only JSON-decodes (target >= {TARGET}):")
    for nf in sorted({k[0] for k in rates}):
        for client in CLIENTS:
            agent_rate, agent_cpu = rates[(nf, f"agent ({client})")]
            bare_rate, bare_cpu = rates[(nf, f"bare {client} + json")]
            ratio = agent_rate / bare_rate
            print(f"{nf:>8}  {client:<13} records/s {agent_rate:>9,.0f} / {bare_rate:>9,.0f} = {ratio:.2f} "
                  f"({'meets' if ratio >= TARGET else 'BELOW'} {TARGET}); "
                  f"per cpu s {agent_cpu:,.0f} / {bare_cpu:,.0f} = {agent_cpu / bare_cpu:.2f}")
    print(f"os.getloadavg() after={tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
