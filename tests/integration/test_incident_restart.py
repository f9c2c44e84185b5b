"""An incident and its root-cause analysis survive a SIGKILL: a real `driftwarden run` process on
the session's tansu broker opens its own incident on drifted car-loan traffic with labels (a x1000
unit bug in `car_value` from one point on), analyses it, is killed with SIGKILL, and the restarted
process serves the same incident with the same analysis, and analyses nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from agent.ingest.embedded import free_port
from agent.ingest.kafka_python import KafkaProducerSink
from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay
from tests.support.data import data_file

WINDOW = 1000
TOKEN = "restart-token"


def get(port: int, path: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DRIFTWARDEN_TOKEN": TOKEN}
    env.pop("DRIFTWARDEN_CRASH_AT", None)
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def wait(proc: subprocess.Popen[bytes], port: int, log: Path, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            body = get(port, "/incidents")
        except OSError:
            body = None
        if body is not None and (found := predicate(body)):
            return found
        time.sleep(0.3)
    raise TimeoutError(f"condition not met in {timeout}s; log tail:\n{log.read_text()[-3000:]}")


def analysed(incidents: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    done = [i for i in incidents if i.get("rca", {}).get("status") in ("done", "failed")]
    return done if done and len(done) == len(incidents) else None


def test_incident_with_its_analysis_is_intact_after_sigkill_and_restart(broker, tmp_path: Path) -> None:  # noqa: ANN001
    tag = f"restart-{int(time.time() * 1000)}"
    topics = (f"{tag}.predictions", f"{tag}.labels")
    port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": topics[0], "labels_topic": topics[1],
                  "group_id": tag},
        "http": {"host": "127.0.0.1", "port": port},
        "state_dir": str(tmp_path / "state"), "checkpoint": {"interval_s": 0.5},
        "rca": {"n_boot": 50},
        "models": {"car-loan": {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba", "segments": ["salary_range"],
            "window": {"size": WINDOW, "label_retention": 10}}},
    }))
    rows = pd.read_csv(data_file("synthetic_car_loan_reference.csv")).iloc[:6000].copy()
    rows.loc[rows.index[3000:], "car_value"] *= 1000.0  # the unit bug
    targets = pd.read_csv(data_file("synthetic_car_loan_reference.csv")).iloc[:6000][["id", "repaid"]]
    spec = ReplaySpec(model="car-loan")
    preds = prediction_records(rows, spec)
    labels = label_records(targets, spec, "repaid")
    log = tmp_path / "agent.log"
    proc = start(config, log)
    try:
        with KafkaProducerSink(broker.bootstrap) as sink:
            replay(sink, preds, topics[0], labels, topics[1], "car-loan", label_delay=200, progress=False)
        before = wait(proc, port, log, analysed, timeout=180)
        dq = [i for i in before if i["kind"] == "data_quality"]
        assert dq and dq[0]["rca"]["status"] == "done", before
        top = dq[0]["rca"]["causes"][0]
        assert (top["cause"], top["feature"]) == ("data_quality", "car_value"), dq[0]["rca"]["causes"]
        time.sleep(1.5)  # past a checkpoint interval: the analysis is in the saved state
        before = get(port, "/incidents")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = start(config, log)
        after = wait(proc, port, log, lambda incs: incs if incs else None, timeout=60)
        by_id = {i["id"]: i for i in after}
        for inc in before:
            assert inc["id"] in by_id, (inc["id"], list(by_id))
            assert by_id[inc["id"]]["rca"] == inc["rca"], inc["id"]  # not analysed again, not lost
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
