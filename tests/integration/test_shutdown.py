"""Graceful shutdown and start-up errors of a real `driftwarden run` process.

- SIGTERM while it consumes: exit 0 within a bound, a checkpoint whose offsets are exactly what
  it counted (every record before the offset counted once, none after), the same offsets
  committed to the consumer group, and a restart that finishes the stream with counts equal to
  the rows sent (no double count).
- A configuration with a bad key, or a missing reference file: exit 2 with a message naming the
  key path / the file, and no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from agent.ingest.kafka_python import KafkaProducerSink
from agent.state.checkpoint import CheckpointStore
from agent.ingest.embedded import free_port
from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay
from tests.support.data import data_file
from tests.support.kafka import end_offsets
from tests.support.metrics import event_counts, wait_taken_in

ROWS = 20_000
WINDOW = 2_000
MODEL = "car-loan"
SHUTDOWN_BOUND_S = 15.0


def _config(tmp: Path, bootstrap: str, topics: tuple[str, str], group: str, **model: object) -> dict:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "predictions_topic": topics[0], "labels_topic": topics[1],
                  "group_id": group, "max_poll_records": 100},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "state_dir": str(tmp / "state"),
        "checkpoint": {"interval_s": 3600},  # only window closes and stop() write checkpoints
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "window": {"size": WINDOW, "label_retention": 20, "label_lateness": "30d"}, "segments": ["salary_range"],
            **model}},
    }


def _write(tmp: Path, cfg: dict, name: str = "agent.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(config: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DRIFTWARDEN_CRASH_AT"}
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115


def _wait(proc: subprocess.Popen, port: int, predicate: Callable[[dict], bool], timeout: float, log: Path) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"agent exited with {proc.returncode}\n{log.read_text()[-4000:]}"
        c = event_counts(port)
        if c is not None and predicate(c):
            return c
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s\n{log.read_text()[-4000:]}")


def _sigterm(proc: subprocess.Popen, log: Path) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=SHUTDOWN_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"no exit within {SHUTDOWN_BOUND_S}s of SIGTERM\n{log.read_text()[-4000:]}")
    assert rc == 0, log.read_text()[-4000:]
    return time.monotonic() - t0


def _per_stream(events: dict, stream: str) -> float:
    """Records of one stream whose effect is counted, whatever the outcome or model."""
    return sum(v for (_, s, _), v in events.items() if s == stream)


@pytest.mark.timeout(180)
def test_sigterm_mid_stream_checkpoints_commits_and_restart_counts_once(broker, unique_topic, tmp_path: Path) -> None:  # noqa: ANN001
    topics = (unique_topic("predictions"), unique_topic("labels"))
    group = unique_topic("group")
    broker.create_topics(list(topics), partitions=1)
    analysis = pd.read_csv(data_file("synthetic_car_loan_analysis.csv")).iloc[:ROWS]
    target = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv")).iloc[:ROWS]
    spec = ReplaySpec(model=MODEL)
    preds = prediction_records(analysis, spec)
    labels = label_records(target, spec, "repaid")
    preds.insert(ROWS // 3, (b"junk", b'{"prediction_id": 7, "model": "car-loan"}'))
    with KafkaProducerSink(broker.bootstrap) as sink:
        replay(sink, preds, topics[0], labels, topics[1], MODEL, label_delay=1000, progress=False)
    end = end_offsets(broker.bootstrap, {topics[0]: len(preds), topics[1]: len(labels)})  # counted by reading

    cfg = _config(tmp_path, broker.bootstrap, topics, group)
    port = cfg["http"]["port"]
    config = _write(tmp_path, cfg)
    log = tmp_path / "agent.log"

    # 1. SIGTERM while consuming.
    proc = _start(config, log)
    _wait(proc, port, lambda c: c.get((MODEL, "predictions", "ok"), 0) >= 1_000, 60, log)
    signalled = time.time()
    took = _sigterm(proc, log)
    assert "stopping: checkpoint, commit, close the consumer" in log.read_text()

    store = CheckpointStore(tmp_path / "state")
    assert store.path.exists(), "no checkpoint written on SIGTERM"
    assert store.path.stat().st_mtime >= signalled - 0.05, "the checkpoint predates SIGTERM: stop() did not save"
    cp = store.load()
    assert cp is not None
    ev = cp.counters.events
    p_off, l_off = cp.offsets.get((topics[0], 0), 0), cp.offsets.get((topics[1], 0), 0)
    # The checkpoint covers exactly the records it took in: offsets 0..n-1 of each partition are
    # counted (a label that came before its prediction waits, checkpointed, in the join).
    prefix = cp.models[MODEL]["prefix"]
    pending = cp.arrays[f"{prefix}.pending.ids.len"].size
    assert p_off == _per_stream(ev, "predictions") > 0
    assert l_off == _per_stream(ev, "labels") + pending
    assert p_off < len(preds), "the stream was already consumed: SIGTERM did not land mid-stream"
    assert ev[(MODEL, "predictions", "duplicate")] == ev[(MODEL, "labels", "duplicate")] == 0
    # The consumer group got the same offsets (a hint for other tools, e.g. lag exporters).
    reader = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:  # committed() fetches the group's offsets without joining it
        committed = {(t, 0): reader.committed(TopicPartition(t, 0)) for t in topics}
    finally:
        reader.close(autocommit=False)
    assert committed == {k: cp.offsets.get(k) for k in committed}

    # 2. Restart: it finishes the stream from the checkpoint; nothing counted twice.
    proc = _start(config, log)
    _wait(proc, port, lambda c: c.get((MODEL, "predictions", "ok"), 0) >= ROWS
          and c.get((MODEL, "labels", "ok"), 0) >= len(labels), 120, log)
    # ... and then its position reaches both topics' ends: nothing more is there to count.
    wait_taken_in(port, {"predictions": end[(topics[0], 0)], "labels": end[(topics[1], 0)]}, timeout_s=60,
                  alive=lambda: proc.poll() is None, context=lambda: log.read_text()[-4000:])
    final = event_counts(port)
    _sigterm(proc, log)
    assert final is not None
    assert final[(MODEL, "predictions", "ok")] == ROWS
    assert final[(MODEL, "labels", "ok")] == len(labels)
    assert final[(MODEL, "predictions", "invalid")] == 1
    assert final[(MODEL, "predictions", "duplicate")] == final[(MODEL, "labels", "duplicate")] == 0
    assert final[(MODEL, "windows", "")] == ROWS // WINDOW
    cp = CheckpointStore(tmp_path / "state").load()
    assert cp is not None and cp.offsets == {(topics[0], 0): len(preds), (topics[1], 0): len(labels)}
    print(f"SIGTERM at {p_off} of {len(preds)} predictions: exit 0 in {took:.2f}s")


def _run_expecting_usage_error(config: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("mutate, key_path", [
    (lambda c: c["models"][MODEL]["window"].update(sise=100), "models.car-loan.window.sise"),
    (lambda c: c["models"][MODEL]["window"].update(size=3), "models.car-loan.window.size"),
    (lambda c: c["kafka"].update(bootstrap=None), "kafka"),
    (lambda c: c["http"].update(port="nine"), "http.port"),
    (lambda c: c.update(checkpoint={"interval_s": -1}), "checkpoint.interval_s"),
    (lambda c: c["models"][MODEL].update(task="ranking"), "models.car-loan.task"),
], ids=["unknown-key", "bad-value", "unknown-kafka-key", "wrong-type", "negative", "bad-enum"])
def test_invalid_config_exits_2_naming_the_key(tmp_path: Path, mutate: Callable[[dict], None], key_path: str) -> None:
    cfg = _config(tmp_path, "127.0.0.1:1", ("p", "l"), "g")
    mutate(cfg)
    err = _run_expecting_usage_error(_write(tmp_path, cfg))
    assert "invalid configuration" in err
    assert key_path in err, err
    if key_path == "kafka":
        assert "bootstrap" in err, err
    assert not (tmp_path / "state").exists(), "nothing may start on an invalid configuration"


def test_missing_reference_exits_2_with_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-reference.parquet"
    cfg = _config(tmp_path, "127.0.0.1:1", ("p", "l"), "g", reference=str(missing))
    err = _run_expecting_usage_error(_write(tmp_path, cfg))
    assert str(missing) in err, err
    assert "not found" in err, err
