"""The real agent scraped by a real Prometheus: the metrics contract as Prometheus sees it.

One agent run per module on the session's tansu broker: a short replay of the car-loan data in
two phases (quiet rows, then drifted rows) with garbage and dirty-but-valid records, windows of
1,000 records, a bearer token in $DRIFTWARDEN_TOKEN. Prometheus scrapes /metrics every second
from before the first record, so every counter moves while it watches and rate() has data.
Then: the target is up, `promtool check metrics` accepts the exposition, every family of
DESIGN.md's metrics contract is queryable with its exact labels, the event counts in Prometheus
equal the records sent, the HTTP auth boundary holds, the label sets the agent knows at start are
there at 0, and every PromQL of every Grafana dashboard runs and returns data (but the few panels
in NEEDS_INCIDENT: their series exist only while an incident has a finished analysis).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from agent.ingest.kafka_python import KafkaProducerSink
from agent.config import build_config
from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay
from agent.service import Agent
from tests.support.data import data_file
from tests.support.dashboards import DASHBOARDS, dashboard_queries
from tests.support.dashboards import concrete as _concrete
from tests.support.services import Prometheus, find_binary

ROOT = Path(__file__).resolve().parents[2]
MODEL = "car-loan"
TOKEN = "s3cret-test-token"
WINDOW = 1000
QUIET = slice(0, 3000)        # the analysis set's early rows: no drift
DRIFTED = slice(45000, 48000)  # its late rows: drifted inputs, lower performance


def garbage_records() -> list[bytes]:
    """Records the contract rejects (outcome invalid, dead-lettered)."""
    ok = {"prediction_id": "g", "model": MODEL, "features": {"car_value": 1.0}, "prediction": 1, "score": 0.5}
    return [b"{not json", b"[1, 2, 3]", orjson.dumps({k: v for k, v in ok.items() if k != "prediction_id"}),
            orjson.dumps({**ok, "model": "no-such-model"}), orjson.dumps({**ok, "score": 7.5})]


def dirty_records(template: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Valid predictions whose features break the schema or skew from training (outcome ok)."""
    f = template["features"]
    variants = [
        {**f, "car_value": -1e9},                    # value skew: out of range
        {**f, "salary_range": "1M+ €"},              # value skew: unseen category
        {**f, "driver_tenure": None},                # null
        {k: v for k, v in f.items() if k != "loan_length"},  # schema: missing
        {**f, "car_value": "expensive"},             # schema: type
        {**f, "colour": "red"},                      # schema: unexpected
    ]
    out = []
    for i, feats in enumerate(variants):
        pid = f"dirty-{i}"
        out.append((pid.encode(), orjson.dumps({**template, "prediction_id": pid, "features": feats})))
    return out


def http(port: int, path: str, token: str | None = None, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of one request to the agent; HTTP errors are returned, not raised."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def events(agent: Agent, stream: str) -> int:
    return sum(n for (_, s, _), n in agent.counters.events.copy().items() if s == stream)


def wait_until(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Iterator[dict[str, Any]]:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("prom")
    tag = f"prom-{int(time.time() * 1000)}"
    preds_topic, labels_topic = f"{tag}.predictions", f"{tag}.labels"
    cfg = build_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": preds_topic,
                  "labels_topic": labels_topic, "group_id": tag},
        "http": {"host": "127.0.0.1", "port": 0},
        "state_dir": str(tmp / "state"),
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "window": {"size": WINDOW}, "segments": ["salary_range"]}},
    })
    analysis = pd.read_csv(data_file("synthetic_car_loan_analysis.csv"))
    target = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv"))
    spec = ReplaySpec(model=MODEL)
    phases = []
    for rows in (QUIET, DRIFTED):
        part = analysis.iloc[rows]
        preds = prediction_records(part, spec)
        labels = label_records(target[target["id"].isin(part["id"])], spec, "repaid")
        phases.append((preds, labels))
    junk = garbage_records()
    dirty = dirty_records(orjson.loads(phases[0][0][0][1]))
    # Garbage and dirty records go into the quiet phase, mid-stream.
    quiet = list(phases[0][0])
    mid = len(quiet) // 2
    quiet[mid:mid] = [(b"junk", g) for g in junk] + dirty
    phases[0] = (quiet, phases[0][1])

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTWARDEN_TOKEN", TOKEN)
        agent = Agent(cfg, evaluate_interval_s=0.2)
        agent.start()
    stop = threading.Event()
    loop = threading.Thread(target=agent.loop, kwargs={"until": stop.is_set, "poll_timeout_s": 0.2}, daemon=True)
    loop.start()
    prom = Prometheus([f"127.0.0.1:{agent.http.port}"]).start()
    sent = {"predictions": 0, "labels": 0}
    try:
        prom.wait_for('up{job="driftwarden"} == 1', timeout=20)
        with KafkaProducerSink(broker.bootstrap) as sink:
            for preds, labels in phases:
                replay(sink, preds, preds_topic, labels, labels_topic, MODEL, label_delay=300, progress=False)
                sent["predictions"] += len(preds)
                sent["labels"] += len(labels)
                wait_until(lambda: events(agent, "predictions") >= sent["predictions"]
                           and events(agent, "labels") >= sent["labels"], 60, f"the agent to consume {sent}")
                # Prometheus sees this phase before the next starts: every counter moves under it.
                prom.wait_for(f'sum(driftwarden_events_total{{job="driftwarden"}}) >= {sum(sent.values())}',
                              timeout=20)
        last = (2 * 3000) // WINDOW - 1

        def judged() -> bool:  # the last full window re-judged with all its labels
            res = agent.snapshot.latest_performance.get(MODEL)
            return res is not None and res.window_id >= last and res.label_coverage == 1.0

        wait_until(judged, 30, "the last window's performance with all labels")
        prom.wait_for(f'driftwarden_label_coverage{{model="{MODEL}"}} == 1', timeout=20)
        yield {"agent": agent, "prom": prom, "sent": sent, "junk": junk, "port": agent.http.port}
    finally:
        prom.stop()
        stop.set()
        loop.join(timeout=30)
        agent.stop()


def q(prom: Prometheus, promql: str, timeout: float = 15) -> list[dict[str, Any]]:
    """Non-empty result of an instant query (waits for the next scrapes)."""
    return prom.wait_for(promql, timeout=timeout)


def value(entry: dict[str, Any]) -> float:
    return float(entry["value"][1])


# -- scrape and exposition ---------------------------------------------------------------------

def test_target_is_up(run) -> None:  # noqa: ANN001
    targets = run["prom"].targets()
    assert [t["health"] for t in targets] == ["up"], targets
    assert targets[0]["lastError"] == ""
    assert value(q(run["prom"], 'up{job="driftwarden"}')[0]) == 1


def test_promtool_check_metrics_passes(run) -> None:  # noqa: ANN001
    status, body = http(run["port"], "/metrics")
    assert status == 200
    promtool = find_binary("promtool", install="apt-get install -y prometheus")
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()
    assert b"driftwarden_events_total" in body


# -- the metrics contract, as Prometheus stores it ---------------------------------------------

CONTRACT: dict[str, set[str]] = {
    # metric (as queried) -> its exact label names (besides job/instance/__name__)
    "driftwarden_events_total": {"model", "stream", "outcome"},
    "driftwarden_schema_violations_total": {"model", "feature", "kind"},
    "driftwarden_value_skew_total": {"model", "feature", "kind"},
    "driftwarden_feature_drift_score": {"model", "feature", "method"},
    "driftwarden_feature_drift_pvalue": {"model", "feature", "test"},
    "driftwarden_feature_drift_detected": {"model", "feature"},
    "driftwarden_dataset_drift_share": {"model"},
    "driftwarden_prediction_drift_score": {"model", "method"},
    "driftwarden_performance": {"model", "metric", "segment"},
    "driftwarden_estimated_performance": {"model", "metric"},
    "driftwarden_concept_drift_detected": {"model", "detector"},
    "driftwarden_label_delay_seconds_bucket": {"model", "le"},
    "driftwarden_windows_total": {"model"},
    "driftwarden_consumer_lag": {"topic", "partition"},
    "driftwarden_processing_seconds_bucket": {"stage", "le"},
    # contract extensions the dashboards and rules use
    "driftwarden_incidents_total": {"model", "kind"},
    "driftwarden_incidents_open": {"model", "kind", "severity"},
    "driftwarden_retrain_jobs_total": {"model", "status"},
    "driftwarden_retrain_job_running": {"model"},
    "driftwarden_model_promoted_version": {"model"},
    "driftwarden_dead_letters_total": {"topic"},
    "driftwarden_window_failures_total": {"model"},
    "driftwarden_rca_seconds_bucket": {"model", "status", "le"},
}


@pytest.mark.parametrize("metric", sorted(CONTRACT))
def test_contract_metric_queryable_with_exact_labels(run, metric: str) -> None:  # noqa: ANN001
    result = q(run["prom"], metric)
    for entry in result:
        labels = set(entry["metric"]) - {"__name__", "job", "instance"}
        assert labels == CONTRACT[metric], (metric, entry["metric"])
    assert all(math.isfinite(value(e)) for e in result), result


def test_contract_label_values(run) -> None:  # noqa: ANN001
    prom = run["prom"]
    outcomes = {e["metric"]["outcome"] for e in q(prom, f'driftwarden_events_total{{model="{MODEL}"}}')}
    assert outcomes >= {"ok", "invalid", "duplicate", "late", "expired"}
    kinds = {(e["metric"]["feature"], e["metric"]["kind"]) for e in q(prom, "driftwarden_schema_violations_total")}
    assert {("loan_length", "missing"), ("car_value", "type")} <= kinds
    assert any(k == "unexpected" for _, k in kinds), kinds
    skew = {(e["metric"]["feature"], e["metric"]["kind"]) for e in q(prom, "driftwarden_value_skew_total")}
    assert {("car_value", "out_of_range"), ("salary_range", "unseen_category")} <= skew
    segments = {e["metric"]["segment"] for e in q(prom, f'driftwarden_performance{{model="{MODEL}",metric="roc_auc"}}')}
    assert "all" in segments and any(s.startswith("salary_range=") for s in segments), segments
    stages = {e["metric"]["stage"] for e in q(prom, "driftwarden_processing_seconds_count")}
    assert stages, "no pipeline stage timed"
    parts = q(prom, "driftwarden_consumer_lag")
    assert {e["metric"]["topic"] for e in parts} <= {run["agent"].config.kafka.predictions_topic,
                                                     run["agent"].config.kafka.labels_topic}
    assert all(e["metric"]["partition"].isdigit() for e in parts)


def test_known_label_sets_are_exported_from_the_start(run) -> None:  # noqa: ANN001
    """What this run never produced is still there, at 0: a quiet pipeline shows 0, not "No data"."""
    prom, cfg = run["prom"], run["agent"].config
    jobs = {e["metric"]["status"]: value(e) for e in q(prom, f'driftwarden_retrain_jobs_total{{model="{MODEL}"}}')}
    assert jobs == dict.fromkeys(("started", "succeeded", "failed", "rejected"), 0.0)
    assert value(q(prom, f'driftwarden_retrain_job_running{{model="{MODEL}"}}')[0]) == 0
    assert value(q(prom, f'driftwarden_model_promoted_version{{model="{MODEL}"}}')[0]) == 0
    kinds = {e["metric"]["kind"] for e in q(prom, f'driftwarden_incidents_total{{model="{MODEL}"}}')}
    assert {"data_drift", "performance_drop", "traffic_drop", "labels_missing"} <= kinds
    open_ = {(e["metric"]["kind"], e["metric"]["severity"]) for e in q(prom, f'driftwarden_incidents_open{{model="{MODEL}"}}')}
    assert ("concept_drift", "critical") in open_ and ("labels_missing", "warning") in open_
    assert value(q(prom, f'driftwarden_window_failures_total{{model="{MODEL}"}}')[0]) == 0
    late = q(prom, f'driftwarden_events_total{{model="{MODEL}",stream="predictions",outcome="late"}}')
    assert value(late[0]) == 0  # count windows: nothing is ever late, and the series is there
    topics = {e["metric"]["topic"] for e in q(prom, "driftwarden_dead_letters_total")}
    assert topics == {cfg.kafka.predictions_topic, cfg.kafka.labels_topic}
    statuses = {e["metric"]["status"] for e in q(prom, f'driftwarden_rca_seconds_count{{model="{MODEL}"}}')}
    assert statuses == {"done", "failed"}
    # every reference feature, each kind the schema check can count, whether or not it happened
    features = set(run["agent"].monitors[MODEL].ref.schema.names)
    schema = {(e["metric"]["feature"], e["metric"]["kind"]) for e in q(prom, f'driftwarden_schema_violations_total{{model="{MODEL}"}}')}
    assert {(f, k) for f in features for k in ("missing", "type")} <= schema
    skew = {e["metric"]["feature"] for e in q(prom, f'driftwarden_value_skew_total{{model="{MODEL}",kind="null"}}')}
    assert features <= skew


def test_drift_appears_in_the_drifted_phase(run) -> None:  # noqa: ANN001
    prom = run["prom"]
    assert value(q(prom, f'driftwarden_dataset_drift_share{{model="{MODEL}"}}')[0]) > 0
    assert q(prom, f'driftwarden_feature_drift_detected{{model="{MODEL}"}} == 1')
    # The gauge was 0 while the quiet windows were the latest: Prometheus saw it change.
    assert value(q(prom, f'min_over_time(driftwarden_dataset_drift_share{{model="{MODEL}"}}[5m])')[0]) == 0
    assert value(q(prom, f'driftwarden_windows_total{{model="{MODEL}"}}')[0]) >= (2 * 3000) // WINDOW


def test_histogram_quantiles_work(run) -> None:  # noqa: ANN001
    prom = run["prom"]
    p90 = q(prom, f'histogram_quantile(0.9, sum by (le) (driftwarden_label_delay_seconds_bucket{{model="{MODEL}"}}))')
    assert math.isfinite(value(p90[0])) and value(p90[0]) > 0
    count = value(q(prom, f'driftwarden_label_delay_seconds_count{{model="{MODEL}"}}')[0])
    assert count == run["sent"]["labels"]
    p99 = q(prom, "histogram_quantile(0.99, sum by (stage, le) (driftwarden_processing_seconds_bucket))")
    assert p99 and all(math.isfinite(value(e)) and value(e) >= 0 for e in p99)


def test_events_in_prometheus_equal_records_sent(run) -> None:  # noqa: ANN001
    prom, sent = run["prom"], run["sent"]
    for stream in ("predictions", "labels"):
        total = value(q(prom, f'sum(driftwarden_events_total{{stream="{stream}"}})')[0])
        assert total == sent[stream], stream
    ok = value(q(prom, f'driftwarden_events_total{{model="{MODEL}",stream="predictions",outcome="ok"}}')[0])
    assert ok == sent["predictions"] - len(run["junk"])
    invalid = value(q(prom, 'sum(driftwarden_events_total{stream="predictions",outcome="invalid"})')[0])
    assert invalid == len(run["junk"])
    assert value(q(prom, 'sum(driftwarden_events_total{stream="labels",outcome="ok"})')[0]) == sent["labels"]


# -- HTTP auth boundary --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_public_endpoints_need_no_token(run, path: str) -> None:  # noqa: ANN001
    status, _ = http(run["port"], path)
    assert status == 200


@pytest.mark.parametrize("path", ["/windows", "/incidents", f"/windows/{MODEL}"])
def test_data_endpoints_need_the_token(run, path: str) -> None:  # noqa: ANN001
    assert http(run["port"], path)[0] == 401
    assert http(run["port"], path, token="wrong")[0] == 401
    status, body = http(run["port"], path, token=TOKEN)
    assert status == 200
    json.loads(body)


# -- the Grafana dashboards against this Prometheus ---------------------------------------------

# Panels whose series exist only while an open incident has a finished root-cause analysis
# (driftwarden_rca_cause), or once an analysis ran (a duration quantile of an empty histogram is
# NaN). This run may open an incident (its drifted phase), but nothing here waits for one: their
# queries must run, data or not. tests/e2e exercises them with a real incident and job.
NEEDS_INCIDENT = {
    ("driftwarden-incidents", "Named root causes (open incidents)"),
    ("driftwarden-incidents", "Root causes over time"),
    ("driftwarden-incidents", "Analysis duration"),
}
def concrete(expr: str) -> str:
    return _concrete(expr, MODEL)


def variable_query(path: Path, name: str) -> str:
    var = next(v for v in json.loads(path.read_text())["templating"]["list"] if v["name"] == name)
    return var["query"]["query"] if isinstance(var["query"], dict) else var["query"]


def label_values(prom: Prometheus, query: str) -> list[str]:
    m = re.fullmatch(r"label_values\((\w+(?:\{[^}]*\})?), *(\w+)\)", concrete(query))
    assert m, query
    url = (f"{prom.url}/api/v1/label/{m.group(2)}/values?" + urllib.parse.urlencode({"match[]": m.group(1)}))
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_model_variable_lists_the_model(run, path: Path) -> None:  # noqa: ANN001
    # the run's records of model "no-such-model" count under model="unknown": not a model to pick
    assert q(run["prom"], 'driftwarden_events_total{model="unknown"}')
    assert label_values(run["prom"], variable_query(path, "model")) == [MODEL]


def test_metric_variable_lists_the_metrics(run) -> None:  # noqa: ANN001
    for path in DASHBOARDS:
        names = {v["name"] for v in json.loads(path.read_text())["templating"]["list"]}
        if "metric" in names:
            metrics = label_values(run["prom"], variable_query(path, "metric"))
            assert "roc_auc" in metrics and "accuracy" in metrics, metrics


def test_dashboards_have_queries() -> None:
    per_dashboard: dict[str, int] = {}
    for uid, _, _ in dashboard_queries():
        per_dashboard[uid] = per_dashboard.get(uid, 0) + 1
    assert len(per_dashboard) == 5 and min(per_dashboard.values()) >= 12, per_dashboard
    titles = {(uid, title) for uid, title, _ in dashboard_queries()}
    assert NEEDS_INCIDENT <= titles, NEEDS_INCIDENT - titles  # the list names real panels


@pytest.mark.parametrize("uid,title,expr", dashboard_queries(),
                         ids=[f"{u}:{t}:{i}" for i, (u, t, _) in enumerate(dashboard_queries())])
def test_dashboard_query_returns_data(run, uid: str, title: str, expr: str) -> None:  # noqa: ANN001
    promql = concrete(expr)
    assert not re.search(r"\$\w+|\$\{", promql), f"unreplaced variable in {promql!r}"
    if (uid, title) in NEEDS_INCIDENT:
        run["prom"].query(promql)  # valid PromQL; its data needs an incident this test does not make
        return
    result = run["prom"].wait_for(promql, lambda r: any(math.isfinite(value(e)) for e in r), timeout=15)
    assert result, (uid, title, promql)
