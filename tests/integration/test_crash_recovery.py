"""Crash recovery on a real broker: the agent is killed with SIGKILL at chosen and random points
(mid-batch, right after a window closed, mid-checkpoint, right after one) and restarted each
time; its final counters, window verdicts and performance must equal an uninterrupted run's.

The kills are real SIGKILLs of a real `driftwarden run` process. For the points that random
timing rarely hits, the process kills itself there (agent.faults, DRIFTWARDEN_CRASH_AT); the
others are `kill -9` from this test after a random delay.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.ingest.kafka_python import KafkaProducerSink
from agent.ingest.embedded import free_port
from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay
from tests.support.data import data_file
from tests.support.kafka import end_offsets
from tests.support.metrics import wait_taken_in

ROWS = 20_000
WINDOW = 2_000


def _counters(port: int) -> dict[tuple, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        if fam.name in ("driftwarden_events", "driftwarden_schema_violations", "driftwarden_value_skew",
                        "driftwarden_windows", "driftwarden_label_delay_seconds", "driftwarden_unlabelled_predictions",
                        "driftwarden_dead_letters"):
            for s in fam.samples:
                if s.name.endswith("_created"):
                    continue
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _ok(counters: dict[tuple, float], stream: str) -> float:
    return counters.get(("driftwarden_events_total", (("model", "car-loan"), ("outcome", "ok"), ("stream", stream))), 0.0)


class AgentProcess:
    def __init__(self, config: Path, port: int, log: Path, crash_at: str | None = None) -> None:
        env = dict(os.environ)
        env.pop("DRIFTWARDEN_CRASH_AT", None)
        if crash_at:
            env["DRIFTWARDEN_CRASH_AT"] = crash_at
        self.port = port
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], env=env,
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT)

    def counters(self) -> dict[tuple, float] | None:
        try:
            return _counters(self.port)
        except OSError:
            return None

    def wait_for(self, predicate, timeout: float) -> dict[tuple, float] | None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            c = self.counters()
            if c is not None and predicate(c):
                return c
            time.sleep(0.2)
        return None


def _config(tmp: Path, name: str, bootstrap: str, topics: tuple[str, str], port: int) -> Path:
    cfg = {
        "kafka": {"bootstrap_servers": bootstrap, "predictions_topic": topics[0], "labels_topic": topics[1],
                  "group_id": f"{topics[0]}-{name}", "max_poll_records": 400},
        "http": {"host": "127.0.0.1", "port": port},
        "state_dir": str(tmp / name),
        "checkpoint": {"interval_s": 0.5},
        "models": {"car-loan": {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "window": {"size": WINDOW, "label_retention": 20, "label_lateness": "30d"}, "segments": ["salary_range"]}},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _final_windows(state: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for line in (state / "windows" / "car-loan.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["window"]] = rec
    return out


def _complete(n_preds: int, n_labels: int):  # noqa: ANN202
    return lambda c: _ok(c, "predictions") >= n_preds and _ok(c, "labels") >= n_labels


def _run_to_end(config: Path, tmp: Path, name: str, n_preds: int, n_labels: int,
                ends: dict[str, int]) -> dict[tuple, float]:
    port = yaml.safe_load(config.read_text())["http"]["port"]
    agent = AgentProcess(config, port, tmp / f"{name}.log")
    counters = agent.wait_for(_complete(n_preds, n_labels), timeout=180)
    if counters is not None:  # then its position reaches both topics' ends: nothing more is there to count
        wait_taken_in(port, ends, timeout_s=60, alive=lambda: agent.proc.poll() is None,
                      context=lambda: (tmp / f"{name}.log").read_text()[-3000:])
    final = agent.counters()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(timeout=30) == 0, (tmp / f"{name}.log").read_text()[-3000:]
    assert counters is not None, (tmp / f"{name}.log").read_text()[-3000:]
    return final


@pytest.mark.timeout(900)
def test_kill_9_at_many_points_then_restart_equals_uninterrupted(broker, tmp_path: Path) -> None:  # noqa: ANN001
    tag = f"crash-{int(time.time() * 1000)}"
    topics = (f"{tag}.predictions", f"{tag}.labels")
    analysis = pd.read_csv(data_file("synthetic_car_loan_analysis.csv")).iloc[:ROWS]
    target = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv")).iloc[:ROWS]
    spec = ReplaySpec(model="car-loan")
    preds = prediction_records(analysis, spec)
    labels = label_records(target, spec, "repaid")
    preds.insert(5000, (b"bad", b"{broken json"))
    # One partition per topic: a count window is "the next N records", which across several
    # partitions depends on how the consumer interleaves them, run to run.
    broker.create_topics(list(topics), partitions=1)
    with KafkaProducerSink(broker.bootstrap) as sink:
        replay(sink, preds, topics[0], labels, topics[1], "car-loan", label_delay=1000, progress=False)
    n_preds, n_labels = ROWS, len(labels)
    end = end_offsets(broker.bootstrap, {topics[0]: len(preds), topics[1]: len(labels)})  # counted by reading
    ends = {"predictions": end[(topics[0], 0)], "labels": end[(topics[1], 0)]}

    baseline = _run_to_end(_config(tmp_path, "baseline", broker.bootstrap, topics, free_port()), tmp_path, "baseline",
                           n_preds, n_labels, ends)

    rng = random.Random(7)
    config = _config(tmp_path, "crashy", broker.bootstrap, topics, free_port())
    port = yaml.safe_load(config.read_text())["http"]["port"]
    planned = ["batch-processed:3", "window-closed:1", "checkpoint-written:2", None, "checkpoint-replaced:2", None,
               "window-closed:1"]
    kills = 0
    for crash_at in planned:
        agent = AgentProcess(config, port, tmp_path / "crashy.log", crash_at)
        if crash_at is None:  # kill -9 from outside, at a random moment once it consumes
            started = agent.wait_for(lambda c: _ok(c, "predictions") > 0, timeout=90)
            if started is not None:
                time.sleep(rng.uniform(0.05, 1.5))
            agent.proc.kill()
        try:
            rc = agent.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # the point was not reached again (little data left): kill -9 now
            agent.proc.kill()
            rc = agent.proc.wait(timeout=30)
        assert rc == -signal.SIGKILL, f"{crash_at}: exited {rc}\n" + (tmp_path / "crashy.log").read_text()[-3000:]
        kills += 1
    assert kills >= 5
    final = _run_to_end(config, tmp_path, "crashy", n_preds, n_labels, ends)

    assert final == baseline
    a, b = _final_windows(tmp_path / "baseline"), _final_windows(tmp_path / "crashy")
    assert sorted(a) == sorted(b) == list(range(ROWS // WINDOW))
    for wid in a:
        assert b[wid]["drift"] == a[wid]["drift"], wid
        assert b[wid]["performance"] == a[wid]["performance"], wid
        assert b[wid]["label_coverage"] == a[wid]["label_coverage"], wid
