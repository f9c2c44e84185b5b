"""The whole alert path with real components: agent -> Prometheus (deploy/prometheus/rules.yml)
-> Alertmanager (deploy/alertmanager/alertmanager.yml) -> POST /alerts on the agent -> incident.

One agent run per module on the session's tansu broker, replaying drifted car-loan rows so the
shipped DriftwardenFeatureDrift rule fires for real. The shipped files are used as they are, with
only what a test must change: `for:` set to 0s, Alertmanager's group timers shortened, its webhook
URL pointed at this agent and its bearer-token file at a temporary one. Then the webhook's own
edges: unparseable bodies (400 with a reason), oversize bodies (413), missing or wrong token (401).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from agent.ingest.kafka_python import KafkaProducerSink
from agent.config import build_config
from agent.ingest.replay import ReplaySpec, prediction_records, replay
from agent.service import Agent
from tests.support.data import data_file
from agent.demo.monitoring import alertmanager_config, fast_rules
from tests.support.services import Alertmanager, Prometheus

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
MODEL = "car-loan"
TOKEN = "alert-path-token"
WINDOW = 1000
MAX_BODY = 4096
DRIFTED = slice(45000, 47000)  # the analysis set's late rows: drifted inputs


def call(port: int, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request to the agent."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def alertmanager_for(agent_port: int, token_file: Path) -> Alertmanager:
    """The shipped alertmanager.yml, pointed at this agent, with 1 s group timers."""
    doc = yaml.safe_load(AM_CONFIG.read_text())
    hooks = [w for r in doc["receivers"] if r["name"] == doc["route"]["receiver"] for w in r["webhook_configs"]]
    assert len(hooks) == 1 and hooks[0]["url"] == "http://driftwarden:9108/alerts", hooks
    url = f"http://127.0.0.1:{agent_port}/alerts"
    return Alertmanager(url, config=alertmanager_config(url, token_file, AM_CONFIG))


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Iterator[dict[str, Any]]:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("alerts")
    tag = f"alerts-{int(time.time() * 1000)}"
    preds_topic = f"{tag}.predictions"
    cfg = build_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": preds_topic,
                  "labels_topic": f"{tag}.labels", "group_id": tag},
        "http": {"host": "127.0.0.1", "port": 0, "max_body_bytes": MAX_BODY},
        "state_dir": str(tmp / "state"),
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba", "window": {"size": WINDOW},
            # the Alertmanager route alone: the agent's own rules would open data_drift first and
            # the alerts would join it (tests/unit/agent/incidents covers that)
            "incidents": {"enabled": False}}},
    })
    preds = prediction_records(pd.read_csv(data_file("synthetic_car_loan_analysis.csv")).iloc[DRIFTED], ReplaySpec(model=MODEL))
    token_file = tmp / "driftwarden-token"
    token_file.write_text(TOKEN + "\n")  # as a mounted secret usually ends

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTWARDEN_TOKEN", TOKEN)
        agent = Agent(cfg)
        agent.start()
    stop = threading.Event()
    loop = threading.Thread(target=agent.loop, kwargs={"until": stop.is_set, "poll_timeout_s": 0.2}, daemon=True)
    loop.start()
    am = prom = None
    try:
        am = alertmanager_for(agent.http.port, token_file).start()
        prom = Prometheus([f"127.0.0.1:{agent.http.port}"], rule_files=[fast_rules(tmp / "rules.yml")],
                          alertmanager=am.address).start()
        with KafkaProducerSink(broker.bootstrap) as sink:
            replay(sink, preds, preds_topic, progress=False)
        deadline = time.monotonic() + 60
        while agent.counters.events[(MODEL, "predictions", "ok")] < len(preds):
            assert time.monotonic() < deadline, f"agent did not consume: {dict(agent.counters.events)}"
            time.sleep(0.1)
        yield {"agent": agent, "prom": prom, "am": am, "port": agent.http.port, "preds": preds}
    finally:
        for svc in (prom, am):
            if svc is not None:
                svc.stop()
        stop.set()
        loop.join(timeout=30)
        agent.stop()


def wait_incidents(port: int, alertname: str, timeout: float = 45) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        status, incidents = call(port, "GET", "/incidents")
        assert status == 200, incidents
        found = [i for i in incidents if i.get("alertname") == alertname]
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {alertname} incident after {timeout}s; incidents: {incidents}")
        time.sleep(0.25)


def test_shipped_rule_fires_in_prometheus(run) -> None:  # noqa: ANN001
    prom = run["prom"]
    firing = prom.wait_for('ALERTS{alertname="DriftwardenFeatureDrift",alertstate="firing"}', timeout=45)
    assert {e["metric"]["model"] for e in firing} == {MODEL}
    assert all(e["metric"]["severity"] == "warning" for e in firing)
    drifted = {e["metric"]["feature"] for e in prom.query(f'driftwarden_feature_drift_detected{{model="{MODEL}"}} == 1')}
    assert {e["metric"]["feature"] for e in firing} <= drifted
    # the agent is up: its outage alerts stay quiet
    assert not prom.query('ALERTS{alertname=~"DriftwardenDown|DriftwardenAbsent"}')


def test_alertmanager_delivers_to_the_agent_which_opens_incidents(run) -> None:  # noqa: ANN001
    port = run["port"]
    incidents = wait_incidents(port, "DriftwardenFeatureDrift")
    for inc in incidents:
        assert inc["model"] == MODEL and inc["kind"] == "alertmanager"
        assert inc["labels"]["severity"] == "warning" and inc["labels"]["feature"]
        status, one = call(port, "GET", f"/incidents/{inc['id']}")
        assert status == 200 and one["id"] == inc["id"]
    assert call(port, "GET", "/incidents", token=None)[0] == 401
    # Alertmanager itself saw the alerts it delivered.
    names = {a["labels"]["alertname"] for a in run["am"].alerts()}
    assert "DriftwardenFeatureDrift" in names


def test_incidents_counter_counts_the_webhook(run) -> None:  # noqa: ANN001
    port = run["port"]
    wait_incidents(port, "DriftwardenFeatureDrift")
    _, incidents = call(port, "GET", "/incidents")
    opened = sum(1 for i in incidents if i["kind"] == "alertmanager" and i["model"] == MODEL)
    result = run["prom"].wait_for(
        f'driftwarden_incidents_total{{model="{MODEL}",kind="alertmanager"}} >= {opened}', timeout=15)
    assert float(result[0]["value"][1]) >= 1


# -- the webhook's edges ---------------------------------------------------------------------------

def alert_body(**overrides: Any) -> bytes:
    payload = {"version": "4", "status": "firing", "receiver": "driftwarden", "groupKey": "{}:{}",
               "alerts": [{"status": "firing", "labels": {"alertname": "ManualTest", "model": MODEL},
                           "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "abc"}]}
    payload.update(overrides)
    return json.dumps(payload).encode()


@pytest.mark.parametrize("body,reason", [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (alert_body(version="3"), "version"),
    (alert_body(alerts="nope"), "'alerts' must be a list"),
    (alert_body(alerts=[{"status": "firing", "labels": {"model": 7}}]), "labels must be an object of strings"),
    (alert_body(alerts=[{"status": "sleeping", "labels": {}}]), "status must be 'firing' or 'resolved'"),
])
def test_unparseable_body_is_400_with_a_reason(run, body: bytes, reason: str) -> None:  # noqa: ANN001
    before = len(call(run["port"], "GET", "/incidents")[1])
    status, resp = call(run["port"], "POST", "/alerts", body)
    assert status == 400, resp
    assert reason in resp["error"]
    assert len(call(run["port"], "GET", "/incidents")[1]) == before


def test_oversize_body_is_413(run) -> None:  # noqa: ANN001
    body = alert_body(padding="x" * (MAX_BODY + 1))
    conn = http.client.HTTPConnection("127.0.0.1", run["port"], timeout=5)
    try:
        conn.request("POST", "/alerts", body=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                             "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 413
        assert str(MAX_BODY) in json.loads(resp.read())["error"]
    finally:
        conn.close()


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", ""])
def test_missing_or_wrong_token_is_401(run, token: str | None) -> None:  # noqa: ANN001
    before = run["agent"].counters.incidents[(MODEL, "alertmanager")]
    status, resp = call(run["port"], "POST", "/alerts", alert_body(), token=token)
    assert status == 401, resp
    assert run["agent"].counters.incidents[(MODEL, "alertmanager")] == before


def test_valid_manual_post_opens_one_incident(run) -> None:  # noqa: ANN001
    before = run["agent"].counters.incidents[(MODEL, "alertmanager")]
    status, resp = call(run["port"], "POST", "/alerts", alert_body())
    assert status == 202, resp
    assert len(resp["incidents"]) == 1
    status, inc = call(run["port"], "GET", f"/incidents/{resp['incidents'][0]}")
    assert status == 200 and inc["alertname"] == "ManualTest"
    assert run["agent"].counters.incidents[(MODEL, "alertmanager")] == before + 1


def test_resolved_alert_opens_no_incident(run) -> None:  # noqa: ANN001
    before = run["agent"].counters.incidents[(MODEL, "alertmanager")]
    resolved = json.loads(alert_body())["alerts"][0] | {"status": "resolved"}
    status, resp = call(run["port"], "POST", "/alerts", alert_body(status="resolved", alerts=[resolved]))
    assert status == 202 and resp["incidents"] == []
    assert run["agent"].counters.incidents[(MODEL, "alertmanager")] == before


def test_redelivered_alert_does_not_open_a_second_incident(run) -> None:  # noqa: ANN001
    """Alertmanager re-sends a group's firing alerts on every change and repeat_interval."""
    alert = {"status": "firing", "labels": {"alertname": "Redelivered", "model": MODEL}, "annotations": {},
             "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f00dfeed"}
    for _ in range(2):
        assert call(run["port"], "POST", "/alerts", alert_body(alerts=[alert]))[0] == 202
    _, incidents = call(run["port"], "GET", "/incidents")
    assert sum(1 for i in incidents if i.get("alertname") == "Redelivered") == 1


# -- the incident's root-cause analysis ------------------------------------------------------------

def wait_rca(port: int, incident_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, inc = call(port, "GET", f"/incidents/{incident_id}")
        assert status == 200, inc
        if inc.get("rca", {}).get("status") in ("done", "failed"):
            return inc
        assert time.monotonic() < deadline, f"no finished analysis after {timeout}s: {inc.get('rca')}"
        time.sleep(0.25)


def test_alertmanager_incident_gets_a_root_cause_analysis(run) -> None:  # noqa: ANN001
    port = run["port"]
    inc = wait_rca(port, wait_incidents(port, "DriftwardenFeatureDrift")[0]["id"])
    rca = inc["rca"]
    assert rca["status"] == "done", rca
    # no labels reach this agent: the data causes only, and the analysis says so
    assert rca["labels"] is False and any("not assessed" in n for n in rca["notes"])
    top = rca["causes"][0]
    assert top["cause"] == "covariate_shift" and 0 < top["confidence"] <= 1, rca["causes"]
    drifted = {e["metric"]["feature"] for e in run["prom"].query(f'driftwarden_feature_drift_detected{{model="{MODEL}"}} == 1')}
    assert top["feature"] in drifted, (top, drifted)
    assert rca["actions"][0]["action"] == "retrain"
    assert rca["rows"] >= WINDOW and rca["seconds"] < 60
    # the analysis' metrics, scraped by the real Prometheus
    prom = run["prom"]
    prom.wait_for(f'driftwarden_rca_cause{{model="{MODEL}",cause="covariate_shift"}} > 0', timeout=30)
    prom.wait_for(f'driftwarden_rca_seconds_count{{model="{MODEL}",status="done"}} >= 1', timeout=30)


def test_incident_report_page_is_served_as_html(run) -> None:  # noqa: ANN001
    port = run["port"]
    inc = wait_rca(port, wait_incidents(port, "DriftwardenFeatureDrift")[0]["id"])
    req = urllib.request.Request(f"http://127.0.0.1:{port}/incidents/{inc['id']}/report",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()
    assert inc["id"] in page and "covariate shift" in page.lower()
    top = inc["rca"]["causes"][0]["feature"]
    assert f'class="chart dist-chart"' in page and f'data-feature="{top}"' in page
    assert call(port, "GET", f"/incidents/{inc['id']}/report", token=None)[0] == 401
    assert call(port, "GET", "/incidents/inc-999999/report")[0] == 404
