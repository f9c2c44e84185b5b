"""Broker outage on a real broker: tansu on durable storage (s3:// against moto) is killed with
SIGKILL while a real `driftwarden run` process consumes, stays down a while, and is restarted on
the same storage and port. The agent must report not-ready (503 on /readyz) while the broker is
gone and stay alive (/healthz 200), become ready again when it returns, and end with exactly the
counts of the rows sent: nothing lost, nothing counted twice. The agent resumes from its own
in-memory position: if the group is rebuilt its on_assign hands those offsets back (Kafka's
committed ones may trail them). The tansu 0.6 build here keeps the group on s3:// across the
restart (no rebalance was seen with outages of 8 to 25 s); the log line count is printed.

Finally the broker is killed again and the agent gets SIGTERM: it must still exit 0, in a
bounded time, with a checkpoint covering everything it counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from agent.ingest.kafka_python import KafkaProducerSink
from agent.state.checkpoint import CheckpointStore
from agent.ingest.embedded import EmbeddedBroker, free_port
from tests.support.s3 import S3Storage
from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay
from tests.support.data import data_file
from tests.support.kafka import end_offsets, read_to_end
from tests.support.metrics import event_counts, wait_taken_in

ROWS = 12_000
WINDOW = 2_000
MODEL = "car-loan"
# SIGTERM with the broker unreachable: the final commit waits out request_timeout_ms (15 s) and
# must still end well inside Kubernetes' default 30 s grace period.
STOP_BOUND_S = 25.0


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait(predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None,
          log: Path | None = None) -> float:
    """Poll until `predicate()`; returns the seconds it took, fails with the agent's log tail."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"agent exited ({proc.returncode}) while waiting for {what}\n{_tail(log)}")
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""


def _status(port: int, path: str) -> int | None:
    try:
        return _get(f"http://127.0.0.1:{port}{path}", timeout=2)[0]
    except OSError:
        return None


def _dlq(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list:
    """The dead-letter topic's records once `expect` of them are there, read to its end (an end
    marker appended then: any duplicate written before it is read too)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            got.extend(recs)
        if len(got) >= expect:
            break
    consumer.close()
    if len(got) < expect:
        return got
    return read_to_end(bootstrap, topic, timeout_s=timeout)


@pytest.fixture
def durable_broker(tmp_path: Path):  # noqa: ANN201
    """A tansu of this test's own on s3:// (moto), so that it can be killed and restarted."""
    s3 = S3Storage(log_path=tmp_path / "moto.log").start()
    broker = EmbeddedBroker(storage=s3.url, env=s3.env, log_path=tmp_path / "tansu.log").start()
    try:
        yield broker
    finally:
        broker.stop(kill=True)
        s3.stop()


@pytest.mark.timeout(240)
def test_broker_killed_and_restarted_loses_and_doubles_nothing(durable_broker: EmbeddedBroker, tmp_path: Path) -> None:
    broker = durable_broker
    topics = ("outage.predictions", "outage.labels")
    # One partition per topic: count windows are then the same N records on every run.
    broker.create_topics([*topics, topics[0] + ".dlq", topics[1] + ".dlq"], partitions=1)

    analysis = pd.read_csv(data_file("synthetic_car_loan_analysis.csv")).iloc[:ROWS]
    target = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv")).iloc[:ROWS]
    spec = ReplaySpec(model=MODEL)
    preds = prediction_records(analysis, spec)
    labels = label_records(target, spec, "repaid")
    half = ROWS // 2
    first_ids = {k for k, _ in preds[:half]}
    first = (preds[:half], [lab for lab in labels if lab[1] in first_ids])
    second = (preds[half:], [lab for lab in labels if lab[1] not in first_ids])
    # One broken record after the restart: its dead letter needs the DLQ producer to reconnect.
    second[0].insert(len(second[0]) // 2, (b"junk", b"{not json after the outage"))

    port = free_port()
    cfg = {
        "kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": topics[0], "labels_topic": topics[1],
                  "group_id": "outage", "max_poll_records": 200},
        "http": {"host": "127.0.0.1", "port": port},
        "state_dir": str(tmp_path / "state"),
        "checkpoint": {"interval_s": 0.5},
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "window": {"size": WINDOW, "label_retention": 20, "label_lateness": "30d"}, "segments": ["salary_range"]}},
    }
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if k != "DRIFTWARDEN_CRASH_AT"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        _wait(lambda: _status(port, "/readyz") == 200, 60, "readiness at start", proc, log)

        def count(stream: str, outcome: str = "ok") -> float:
            c = event_counts(port) or {}
            return c.get((MODEL, stream, outcome), 0.0)

        with KafkaProducerSink(broker.bootstrap) as sink:
            replay(sink, first[0], topics[0], first[1], topics[1], MODEL, label_delay=500, progress=False)
        _wait(lambda: count("predictions") > 0, 60, "the first predictions", proc, log)

        # -- outage: kill -9 the broker mid-stream ------------------------------------------------
        broker.stop(kill=True)
        counted_at_kill = count("predictions") + count("labels")
        down_after = _wait(lambda: _status(port, "/readyz") == 503, 15, "/readyz 503 with the broker down", proc, log)
        assert down_after < 10, f"readiness took {down_after:.1f}s to notice the outage"
        _, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert "broker" in json.loads(body)["reason"]
        time.sleep(8.0)  # longer than the consumer's session timeout (6 s)
        assert proc.poll() is None, _tail(log)
        assert _status(port, "/healthz") == 200
        assert _status(port, "/readyz") == 503
        assert event_counts(port) is not None  # /metrics still served during the outage

        # -- restart on the same S3 bucket and port -----------------------------------------------
        broker.start()
        up_after = _wait(lambda: _status(port, "/readyz") == 200, 60, "/readyz 200 after the restart", proc, log)
        _wait(lambda: count("predictions") >= half and count("labels") >= len(first[1]), 60,
              "the first half after the restart", proc, log)
        with KafkaProducerSink(broker.bootstrap) as sink:
            replay(sink, second[0], topics[0], second[1], topics[1], MODEL, label_delay=500, progress=False)
        _wait(lambda: count("predictions") >= ROWS and count("labels") >= len(labels)
              and (event_counts(port) or {}).get(("unknown", "predictions", "invalid"), 0) >= 1,
              90, "every record", proc, log)
        # ... and its position reaches both topics' ends (counted by reading them): nothing more is
        # there to count, and a re-read after the reconnect would come before those ends, in `final`.
        end = end_offsets(broker.bootstrap, {topics[0]: half + len(second[0]), topics[1]: len(labels)})
        wait_taken_in(port, {"predictions": end[(topics[0], 0)], "labels": end[(topics[1], 0)]}, timeout_s=60,
                      alive=lambda: proc.poll() is None, context=lambda: _tail(log))
        final = event_counts(port)
        assert final is not None
        expected = {
            (MODEL, "predictions", "ok"): ROWS, (MODEL, "labels", "ok"): len(labels),
            (MODEL, "predictions", "duplicate"): 0, (MODEL, "labels", "duplicate"): 0,
            (MODEL, "predictions", "late"): 0, (MODEL, "labels", "expired"): 0,
            (MODEL, "predictions", "invalid"): 0, (MODEL, "labels", "invalid"): 0,
            ("unknown", "predictions", "invalid"): 1,  # unreadable JSON names no model
            (MODEL, "windows", ""): ROWS // WINDOW,
        }
        assert {k: final.get(k, 0.0) for k in expected} == expected, f"counted {counted_at_kill:.0f} at the kill"

        dead = _dlq(broker.bootstrap, topics[0] + ".dlq", 1)
        assert len(dead) == 1
        assert "invalid JSON" in dict(dead[0].headers)["dlq.reason"].decode()

        # -- SIGTERM while the broker is down again: a bounded, clean exit with a checkpoint --------
        broker.stop(kill=True)
        _wait(lambda: _status(port, "/readyz") == 503, 15, "/readyz 503 before SIGTERM", proc, log)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {STOP_BOUND_S}s of SIGTERM with the broker down\n{_tail(log)}")
        stop_s = time.monotonic() - t0
        assert rc == 0, _tail(log)
        cp = CheckpointStore(tmp_path / "state").load()
        assert cp is not None
        assert cp.offsets == {(topics[0], 0): len(second[0]) + half, (topics[1], 0): len(labels)}
        assert cp.counters.events[(MODEL, "predictions", "ok")] == ROWS
        print(f"counted {counted_at_kill:.0f} of {half + len(first[1])} first-half records at the kill; "
              f"/readyz 503 after {down_after:.1f}s, 200 again {up_after:.1f}s after the restart; "
              f"SIGTERM with the broker down: exit 0 in {stop_s:.1f}s; "
              f"{log.read_text().count('agent.ingest.kafka_python: assigned')} partition assignment(s) in the log")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
