"""The whole loop with real processes on loopback: drift -> alert -> incident -> RCA -> retraining
-> outcome, and every Grafana panel's query answered by the Prometheus that watched it.

tansu (the Kafka-protocol broker), the agent (`driftwarden run`, its own process), Prometheus
scraping it with the shipped rules, Alertmanager with the shipped route posting to the agent's
`/alerts` with its bearer token, and a producer (`driftwarden replay`, its own process) sending the
nannyml car-loan analysis period (inputs drift in its second half) with the labels following.
What a test must change is what `driftwarden demo --with-prometheus` changes too: every rule's
`for` at 0 s and Alertmanager's group timers at 1 s (agent/demo/monitoring.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.demo.monitoring import Alertmanager, Prometheus, alertmanager_config, fast_rules
from agent.ingest.embedded import EmbeddedBroker, free_port, stop_process
from tests.support.dashboards import DASHBOARDS, concrete, dashboard_queries
from tests.support.data import data_file

ROOT = Path(__file__).resolve().parents[2]
MODEL = "car-loan"
TOKEN = "whole-loop-token"
WINDOW = 2500
GATES = {"data.shapes", "data.dtypes", "data.finite", "data.normalised", "data.label_alignment", "data.leakage",
         "init.symmetry", "init.loss", "grad.flow", "overfit.one_batch", "train.finite", "train.grad_norm",
         "train.loss_decreasing", "train.early_stopping", "baseline", "champion"}


def call(port: int, path: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait(what: str, probe: Any, timeout_s: float, proc: subprocess.Popen[bytes] | None = None,
         log: Path | None = None, detail: Any = None) -> Any:
    """Poll ``probe()`` until it returns something truthy; fail with the agent's log tail."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            last = probe()
        except (OSError, urllib.error.URLError, KeyError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log and log.exists() else ""
    more = ""
    if detail is not None:
        try:
            more = f"\n{detail()}"
        except Exception as e:  # noqa: BLE001 - the diagnosis must not hide the failure
            more = f"\n(detail failed: {e!r})"
    pytest.fail(f"{what}: not within {timeout_s:.0f} s (last: {last!r}){more}\n{tail}")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("whole-loop")
    broker = EmbeddedBroker(log_path=tmp / "tansu.log").start()
    port = free_port()
    config = tmp / "driftwarden.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": broker.bootstrap, "group_id": "whole-loop"},
        "http": {"host": "127.0.0.1", "port": port, "token_env": "DRIFTWARDEN_TOKEN"},
        "state_dir": str(tmp / "state"),
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "features": ["car_value", "salary_range", "debt_to_income_ratio", "loan_length",
                         "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure"],
            "window": {"size": WINDOW, "label_retention": 2}, "segments": ["salary_range"],
            # the analysis period spans ten months of event time, 15 days a window: keep it all
            "retrain": {"enabled": True, "min_rows": 5000, "epochs": 8, "cooldown_s": 3600, "timeout_s": 600,
                        "traffic_max_age_s": 400 * 86400}}},
    }))
    env = {**os.environ, "DRIFTWARDEN_TOKEN": TOKEN, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    agent_log = tmp / "agent.log"
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    procs: list[tuple[subprocess.Popen[bytes], Any]] = []
    services: list[Any] = []

    def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
        out = open(log, "ab")  # noqa: SIM115 - closed by stop_process
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp)
        procs.append((proc, out))
        return proc

    try:
        agent = spawn(["run", "--config", str(config)], agent_log)
        wait("the agent ready", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200,
             90, agent, agent_log)
        hook = f"http://127.0.0.1:{port}/alerts"
        am = Alertmanager(hook, config=alertmanager_config(hook, token_file)).start()
        services.append(am)
        prom = Prometheus([f"127.0.0.1:{port}"], rule_files=[fast_rules(tmp / "rules.yml")],
                          alertmanager=am.address).start()
        services.append(prom)
        producer = spawn(["replay", str(data_file("synthetic_car_loan_analysis.csv")), "--bootstrap", broker.bootstrap,
                          "--model", MODEL, "--labels", str(data_file("synthetic_car_loan_analysis_target.csv")),
                          "--label-column", "repaid", "--label-delay", "2000", "--rate", "5000", "--quiet"],
                         tmp / "producer.log")
        assert producer.wait(timeout=180) == 0, (tmp / "producer.log").read_text()[-2000:]
        yield {"port": port, "prom": prom, "am": am, "agent": agent, "log": agent_log, "state": tmp / "state"}
    finally:
        for svc in reversed(services):
            svc.stop()
        for proc, out in reversed(procs):
            stop_process(proc, out, timeout_s=30)
        broker.stop()


def test_the_drift_alert_fires_and_reaches_the_agent_through_alertmanager(loop: dict[str, Any]) -> None:
    prom, am = loop["prom"], loop["am"]
    firing = wait("DriftwardenFeatureDrift firing in Prometheus", lambda: [
        a for a in prom.alerts() if a["labels"]["alertname"] == "DriftwardenFeatureDrift" and a["state"] == "firing"], 120)
    assert firing[0]["labels"]["model"] == MODEL
    wait("the alert in Alertmanager", lambda: [a for a in am.alerts()
                                                if a["labels"]["alertname"] == "DriftwardenFeatureDrift"], 60)
    attached = wait("the alert at the agent's /alerts", lambda: [
        i for i in call(loop["port"], "/incidents")
        if any(a.get("alertname") == "DriftwardenFeatureDrift" for a in i.get("alerts", []))
        or i.get("alertname") == "DriftwardenFeatureDrift"], 60, loop["agent"], loop["log"])
    assert attached[0]["model"] == MODEL


def test_an_incident_has_a_finished_analysis_naming_a_cause(loop: dict[str, Any]) -> None:
    named = wait("an incident whose RCA is done and names a cause", lambda: [
        i for i in call(loop["port"], "/incidents") if (i.get("rca") or {}).get("status") == "done"
        and i["rca"].get("causes")], 180, loop["agent"], loop["log"])
    inc = call(loop["port"], f"/incidents/{named[0]['id']}")
    top = inc["rca"]["causes"][0]
    assert top["cause"] in {"covariate_shift", "concept_drift", "label_shift", "data_quality",
                            "underrepresented_segment", "label_noise"} and 0 < top["confidence"] <= 1, top
    assert inc["rca"]["actions"], inc["rca"]
    page = urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{loop['port']}/incidents/{inc['id']}/report",
        headers={"Authorization": f"Bearer {TOKEN}"}), timeout=10).read().decode()
    assert top["cause"].replace("_", " ") in page.lower().replace("_", " ") and "<svg" in page


def test_a_retraining_job_runs_every_gate_and_records_its_outcome(loop: dict[str, Any]) -> None:
    port = loop["port"]
    jobs = wait("a retraining job that ended", lambda: [j for j in call(port, "/jobs") if j["status"] in
                                                     ("succeeded", "failed")], 420, loop["agent"], loop["log"],
                detail=lambda: [(i["id"], i["kind"], i.get("first_window"), i.get("retrain"),
                                 [a.get("action") for a in (i.get("rca") or {}).get("actions", [])])
                                for i in call(port, "/incidents")])
    job = call(port, f"/jobs/{jobs[-1]['id']}")
    names = {g["name"] for g in job["gates"]}
    assert job["status"] == "succeeded", (job["status"], job["reason"], [g for g in job["gates"] if not g["passed"]])
    assert GATES <= names, sorted(names)
    assert job["verdict"] in ("promote", "reject")
    champion = next(g for g in job["gates"] if g["name"] == "champion")
    if job["verdict"] == "promote":
        assert champion["passed"] and job["promoted"] and job["version"]
        models = call(port, f"/models/{MODEL}")
        assert models["promoted"] == job["version"], models
    else:                                 # rejected: the champion stays, the reason says why
        assert not champion["passed"] and champion["detail"] and not job["promoted"]
    for status in ("started", "succeeded" if job["verdict"] == "promote" else "rejected"):
        wait(f"driftwarden_retrain_jobs_total{{status={status!r}}} moved in Prometheus", lambda: loop["prom"].query(
            f'driftwarden_retrain_jobs_total{{model="{MODEL}",status="{status}"}} == 1'), 60)


def test_every_dashboard_panel_returns_data_after_the_loop(loop: dict[str, Any]) -> None:
    wait("a job that ended", lambda: [j for j in call(loop["port"], "/jobs") if j["status"] in ("succeeded", "failed")],
         420, loop["agent"], loop["log"])
    queries = dashboard_queries()
    assert len(DASHBOARDS) >= 5 and len(queries) >= 30, (DASHBOARDS, len(queries))
    empty = []
    for dash, title, expr in queries:
        promql = concrete(expr, MODEL)
        assert not re.search(r"\$\w+|\$\{", promql), f"unreplaced variable in {promql!r}"
        try:
            loop["prom"].wait_for(promql, lambda r: any(math.isfinite(float(e["value"][1])) for e in r), timeout=20)
        except TimeoutError:
            empty.append(f"{dash} / {title}: {promql}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_the_agent_survived_the_loop(loop: dict[str, Any]) -> None:
    assert loop["agent"].poll() is None, loop["log"].read_text()[-3000:]
    # every record sent is counted once, whatever its outcome: nothing lost on the way
    wait("all 50,000 predictions and labels counted", lambda: {
        e["metric"]["stream"]: float(e["value"][1]) for e in loop["prom"].query(
            f'sum by (stream) (driftwarden_events_total{{model="{MODEL}"}})')} == {"predictions": 5e4, "labels": 5e4},
         90, loop["agent"], loop["log"], detail=lambda: loop["prom"].query(f'driftwarden_events_total{{model="{MODEL}"}} > 0'))
