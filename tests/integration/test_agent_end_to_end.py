"""The agent end to end on a real tansu broker: replay the car-loan data set (predictions from
the analysis file, labels from the target file, delayed) plus a fuzzed set of garbage records,
then scrape the real /metrics and compare every verdict with scipy / scikit-learn computed
directly on the same windows."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import numpy as np
import orjson
import pandas as pd
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from sklearn.metrics import roc_auc_score

from agent.ingest.kafka_python import KafkaProducerSink
from agent.config import build_config
from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay
from agent.service import Agent
from tests.support.data import data_file

WINDOW = 5000
MAX_BYTES = 16_384
NUMERIC = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
CATEGORICAL = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]


def garbage_records() -> list[bytes]:
    """Broken JSON, wrong types, missing ids, unknown model, huge payloads."""
    ok = {"prediction_id": "g", "model": "car-loan", "features": {"car_value": 1.0}, "prediction": 1, "score": 0.5}
    out = [b"{not json", b"", b"\xff\xfe\x00", b"[1, 2, 3]", b"null", b'"a string"', b"{}" * 3]
    for field in ("prediction_id", "model", "features", "prediction"):
        rec = dict(ok)
        del rec[field]
        out.append(orjson.dumps(rec))
    for field, bad in [("prediction_id", 17), ("prediction_id", ""), ("model", ["x"]), ("features", [1, 2]),
                       ("prediction", {"a": 1}), ("score", 7.5), ("score", "high"), ("timestamp", "yesterday"),
                       ("model", "no-such-model")]:
        rec = dict(ok)
        rec[field] = bad
        out.append(orjson.dumps(rec))
    out.append(orjson.dumps({**ok, "features": {"car_value": "x" * (2 * MAX_BYTES)}}))  # huge payload
    return out


def scrape(port: int) -> dict[str, list]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(body)}


def sample(metrics: dict[str, list], name: str, **labels: str) -> float:
    for samples in metrics.values():
        for s in samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(f"{name}{labels} not exported")


@pytest.fixture(scope="module")
def run_agent(broker, tmp_path_factory):  # noqa: ANN001, ANN201
    tmp = tmp_path_factory.mktemp("e2e")
    tag = f"e2e-{int(time.time() * 1000)}"
    preds_topic, labels_topic = f"{tag}.predictions", f"{tag}.labels"
    cfg = build_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": preds_topic, "labels_topic": labels_topic,
                  "group_id": tag, "max_record_bytes": MAX_BYTES},
        "http": {"host": "127.0.0.1", "port": 0},
        "state_dir": str(tmp / "state"),
        "models": {"car-loan": {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "window": {"size": WINDOW, "label_retention": 20}, "segments": ["salary_range"]}},
    })
    analysis = pd.read_csv(data_file("synthetic_car_loan_analysis.csv"))
    target = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv"))
    spec = ReplaySpec(model="car-loan")
    preds = prediction_records(analysis, spec)
    labels = label_records(target, spec, "repaid")
    junk = garbage_records()
    # Interleave garbage through the stream so it lands inside windows, not only at the edges.
    stream = list(preds)
    for i, g in enumerate(junk):
        stream.insert((i + 1) * (len(preds) // (len(junk) + 1)), (b"junk", g))
    agent = Agent(cfg)
    agent.start()
    with KafkaProducerSink(broker.bootstrap) as sink:
        replay(sink, stream, preds_topic, labels, labels_topic, "car-loan", label_delay=2000, progress=False)
    expected_labels = len(labels)

    def done() -> bool:
        ev = agent.counters.events
        return (ev[("car-loan", "predictions", "ok")] >= len(preds)
                and ev[("car-loan", "labels", "ok")] >= expected_labels
                and sum(v for (m, s, o), v in ev.items() if s == "predictions" and o == "invalid") >= len(junk))

    t = threading.Thread(target=agent.loop, kwargs={"until": done}, daemon=True)
    t.start()
    t.join(timeout=240)
    assert not t.is_alive(), f"agent did not consume everything: {dict(agent.counters.events)}"
    agent.pipeline.evaluate()
    agent._publish()
    metrics = scrape(agent.http.port)
    agent.stop()
    windows: dict[int, dict] = {}
    for line in (tmp / "state" / "windows" / "car-loan.jsonl").read_text().splitlines():
        rec = json.loads(line)
        windows[rec["window"]] = rec  # last judgement of each window wins
    yield {"metrics": metrics, "windows": windows, "analysis": analysis, "target": target, "junk": junk,
           "preds": preds, "labels": labels, "bootstrap": broker.bootstrap, "preds_topic": preds_topic}


def test_event_counts_equal_rows_sent(run_agent) -> None:  # noqa: ANN001
    m = run_agent["metrics"]
    assert sample(m, "driftwarden_events_total", model="car-loan", stream="predictions", outcome="ok") == len(run_agent["preds"])
    assert sample(m, "driftwarden_events_total", model="car-loan", stream="labels", outcome="ok") == len(run_agent["labels"])
    invalid = sum(s.value for s in m["driftwarden_events"] if s.name == "driftwarden_events_total"
                  and s.labels["stream"] == "predictions" and s.labels["outcome"] == "invalid")
    assert invalid == len(run_agent["junk"])
    assert sample(m, "driftwarden_windows_total", model="car-loan") == len(run_agent["preds"]) // WINDOW


def _scipy_window(ref: pd.DataFrame, win: pd.DataFrame) -> dict[str, tuple[float, float]]:
    raw = {}
    for c in NUMERIC:
        r = stats.ks_2samp(ref[c].to_numpy(float), win[c].to_numpy(float))
        raw[c] = (float(r.statistic), float(r.pvalue))
    for c in CATEGORICAL:
        table = pd.concat([ref[c].astype(str).value_counts(), win[c].astype(str).value_counts()], axis=1).fillna(0).T
        chi2, p, _, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
        raw[c] = (float(chi2), float(p))
    adjusted = stats.false_discovery_control([raw[c][1] for c in raw], method="bh")
    return {c: (raw[c][0], float(p)) for c, p in zip(raw, adjusted)}


def test_window_drift_equals_scipy_on_same_rows(run_agent) -> None:  # noqa: ANN001
    ref = pd.read_csv(data_file("synthetic_car_loan_reference.csv"))
    analysis = run_agent["analysis"]
    windows = run_agent["windows"]
    assert sorted(windows) == list(range(len(analysis) // WINDOW))
    flagged = []
    for wid, rec in windows.items():
        win = analysis.iloc[wid * WINDOW:(wid + 1) * WINDOW]
        expected = _scipy_window(ref, win)
        got = rec["drift"]["features"]
        for feat, (stat, p) in expected.items():
            assert got[feat]["statistic"] == pytest.approx(stat, rel=1e-9, abs=1e-12), (wid, feat)
            assert got[feat]["p_value"] == pytest.approx(p, rel=1e-6, abs=1e-300), (wid, feat)
        flagged.append(rec["drift"]["drifted"])
    # The data set drifts in its later part: early windows quiet, late ones flagged.
    assert not any(flagged[:3]) and all(flagged[-3:])


def test_window_roc_auc_equals_sklearn(run_agent) -> None:  # noqa: ANN001
    analysis = run_agent["analysis"].merge(run_agent["target"], on="id")
    for wid, rec in run_agent["windows"].items():
        win = analysis.iloc[wid * WINDOW:(wid + 1) * WINDOW]
        assert rec["label_coverage"] == 1.0
        assert rec["performance"]["all"]["roc_auc"] == pytest.approx(roc_auc_score(win["repaid"], win["y_pred_proba"]), abs=1e-12)
        for seg, part in win.groupby("salary_range"):
            name = f"salary_range={seg}"
            assert rec["support"][name] == len(part)
            if len(part) < 50:  # too little support: marked, never reported as a drop
                assert name not in rec["performance"]
                continue
            got = rec["performance"][name]["roc_auc"]
            assert got == pytest.approx(roc_auc_score(part["repaid"], part["y_pred_proba"]), abs=1e-12)


def test_metrics_contract_and_latest_window(run_agent) -> None:  # noqa: ANN001
    m = run_agent["metrics"]
    last = run_agent["windows"][max(run_agent["windows"])]
    for feat, v in last["drift"]["features"].items():
        assert sample(m, "driftwarden_feature_drift_detected", model="car-loan", feature=feat) == float(v["drifted"])
        assert sample(m, "driftwarden_feature_drift_pvalue", model="car-loan", feature=feat, test=v["method"]) == pytest.approx(v["p_value"])
    assert sample(m, "driftwarden_dataset_drift_share", model="car-loan") == pytest.approx(last["drift"]["dataset_drift_share"])
    assert sample(m, "driftwarden_performance", model="car-loan", metric="roc_auc", segment="all") == pytest.approx(
        last["performance"]["all"]["roc_auc"])
    assert sample(m, "driftwarden_estimated_performance", model="car-loan", metric="roc_auc") > 0.5
    assert sample(m, "driftwarden_label_delay_seconds_count", model="car-loan") == len(run_agent["labels"])


def test_garbage_lands_in_dlq_with_reasons(run_agent) -> None:  # noqa: ANN001
    tp = TopicPartition(run_agent["preds_topic"] + ".dlq", 0)
    consumer = KafkaConsumer(bootstrap_servers=run_agent["bootstrap"], enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(run_agent["junk"]) and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=1000).values():
            got.extend(recs)
    consumer.close()
    assert len(got) == len(run_agent["junk"])
    reasons = [dict(r.headers)["dlq.reason"].decode() for r in got]
    assert any("invalid JSON" in r for r in reasons)
    assert any("missing required field 'prediction_id'" in r for r in reasons)
    assert any("unknown model 'no-such-model'" in r for r in reasons)
    assert any("exceeds the 16384-byte limit" in r for r in reasons)
    assert all("offset" in r for r in reasons)
