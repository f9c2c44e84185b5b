"""The Prometheus exposition of a real Agent (in-process broker, real HTTP server): every label set the
agent knows at start is exported at 0 before any traffic, counts add up once traffic arrives,
retraining jobs are counted by the contract's statuses, the promoted registry version is a gauge
read from disk only when jobs change (or every few seconds), and `promtool check metrics` accepts it."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import build_config
from agent.incidents.rules import KINDS
from agent.ingest.broker import RecordBatch, TopicPartitionKey
from agent.outputs.metrics import EVENT_OUTCOMES, JOB_STATUSES, KnownSeries, Snapshot, job_counts
from agent.retrain.registry import ModelRegistry
from agent.service import Agent
from tests.support.services import find_binary

NUMERIC = ["x0", "x1"]
CATEGORICAL = ["c0"]
FEATURES = NUMERIC + CATEGORICAL
MODEL = "m"
PREDS, LABELS = "preds", "labs"
T0 = 1_790_000_000


class MemoryBroker:
    """The Broker protocol in memory: polls hand out what the test queued, dead letters are kept."""

    def __init__(self) -> None:
        self.queue: list[list[RecordBatch]] = []
        self.dead: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def feed(self, topic: str, values: list[bytes], start: int = 0) -> None:
        n = len(values)
        with self._lock:
            self.queue.append([RecordBatch(topic, 0, np.arange(start, start + n), np.full(n, T0 * 1000), [None] * n,
                                           list(values))])

    def start(self) -> None: ...
    def poll(self, max_records: int, timeout_s: float) -> list[RecordBatch]:
        with self._lock:
            return self.queue.pop(0) if self.queue else []
    def seek(self, offsets: dict[TopicPartitionKey, int]) -> None: ...
    def commit(self, offsets: dict[TopicPartitionKey, int], timeout_s: float | None = None) -> bool:
        return True
    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str, partition: int,
                    offset: int) -> None:
        self.dead.append((topic, reason))
    def flush(self, timeout_s: float = 30.0) -> bool:
        return True
    def assignment(self) -> set[TopicPartitionKey]:
        return {(PREDS, 0), (LABELS, 0)}
    def lag(self) -> dict[TopicPartitionKey, int]:
        return {(PREDS, 0): 0, (LABELS, 0): 0}
    def connected(self) -> bool:
        return True
    def close(self, timeout_s: float = 10.0) -> None: ...


def reference(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    p = 1.0 / (1.0 + np.exp(-x.sum(axis=1)))
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "c0": rng.choice(["a", "b", "c"], n),
                         "y": (rng.random(n) < p).astype(int), "y_pred": (p > 0.5).astype(int), "y_proba": p})


def make_agent(tmp: Path) -> tuple[Agent, MemoryBroker]:
    ref = tmp / "ref.parquet"
    reference().to_parquet(ref)
    cfg = build_config({
        "kafka": {"bootstrap_servers": "unused:9092", "predictions_topic": PREDS, "labels_topic": LABELS},
        "http": {"host": "127.0.0.1", "port": 0}, "state_dir": str(tmp / "state"),
        "models": {MODEL: {"task": "binary_classification", "reference": str(ref), "target": "y",
                           "prediction": "y_pred", "score": "y_proba", "features": FEATURES,
                           "window": {"size": 100}, "segments": ["c0"]}}})
    broker = MemoryBroker()
    return Agent(cfg, broker=broker, evaluate_interval_s=0.0), broker


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Agent, MemoryBroker]]:
    a, broker = make_agent(tmp_path)
    a.start()
    try:
        yield a, broker
    finally:
        a.stop()


def scrape(a: Agent) -> bytes:
    assert a.http is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{a.http.port}/metrics", timeout=5) as resp:
        return resp.read()


def samples(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """sample name -> {sorted label items: value}."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by(series: dict[tuple[tuple[str, str], ...], float], *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(dict(k)[n] for n in names): v for k, v in series.items()}


def promtool_check(body: bytes) -> None:
    promtool = find_binary("promtool", install="apt-get install -y prometheus")
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()


def predictions(lo: int, hi: int) -> list[bytes]:
    rng = np.random.default_rng(lo)
    out = []
    for i in range(lo, hi):
        x0, x1 = (float(v) for v in rng.normal(size=2))
        p = float(1.0 / (1.0 + np.exp(-(x0 + x1))))
        out.append(orjson.dumps({"prediction_id": f"p{i}", "model": MODEL, "timestamp": T0 + i,
                                 "features": {"x0": x0, "x1": x1, "c0": "abc"[i % 3]},
                                 "prediction": int(p > 0.5), "score": p}))
    return out


# -- a fresh agent: every known label set at 0 --------------------------------------------------

def test_a_fresh_agent_exports_every_known_series_at_zero(agent) -> None:  # noqa: ANN001
    a, _ = agent
    body = scrape(a)  # start() published: no poll has run yet
    promtool_check(body)
    s = samples(body)
    events = by(s["driftwarden_events_total"], "model", "stream", "outcome")
    assert events == {**{(MODEL, stream, o): 0 for stream, outs in EVENT_OUTCOMES.items() for o in outs},
                      ("unknown", "predictions", "invalid"): 0, ("unknown", "labels", "invalid"): 0}
    assert {o for _, _, o in events} == {"ok", "invalid", "duplicate", "late", "expired"}
    schema = by(s["driftwarden_schema_violations_total"], "model", "feature", "kind")
    assert schema == {(MODEL, f, k): 0 for f in FEATURES for k in ("missing", "type")}
    skew = by(s["driftwarden_value_skew_total"], "model", "feature", "kind")
    assert skew == {**{(MODEL, f, k): 0 for f in NUMERIC for k in ("out_of_range", "null")},
                    **{(MODEL, "c0", k): 0 for k in ("unseen_category", "null")}}
    for name in ("driftwarden_windows_total", "driftwarden_unlabelled_predictions_total",
                 "driftwarden_window_failures_total", "driftwarden_retrain_job_running",
                 "driftwarden_model_promoted_version", "driftwarden_join_pending_labels"):
        assert by(s[name], "model") == {(MODEL,): 0}, name
    assert by(s["driftwarden_dead_letters_total"], "topic") == {(PREDS,): 0, (LABELS,): 0}
    kinds = (*KINDS, "alertmanager")  # the rules' kinds, and the incidents POST /alerts opens
    assert by(s["driftwarden_incidents_total"], "model", "kind") == {(MODEL, k): 0 for k in kinds}
    assert by(s["driftwarden_incidents_open"], "model", "kind", "severity") == {
        (MODEL, k, sev): 0 for k in kinds for sev in ("warning", "critical")}
    assert by(s["driftwarden_retrain_jobs_total"], "model", "status") == {(MODEL, st): 0 for st in JOB_STATUSES}
    assert set(JOB_STATUSES) == {"started", "succeeded", "failed", "rejected"}
    # histograms: every bucket at 0, so rate() and increase() see the first observation
    for name in ("driftwarden_rca_seconds_count", "driftwarden_rca_seconds_sum"):
        assert by(s[name], "model", "status") == {(MODEL, "done"): 0, (MODEL, "failed"): 0}, name
    assert by(s["driftwarden_label_delay_seconds_count"], "model") == {(MODEL,): 0}
    assert set(by(s["driftwarden_label_delay_seconds_bucket"], "model", "le").values()) == {0}
    # the known sets are computed once, not per batch
    known = a.snapshot.known
    a._publish()
    assert a.snapshot.known is known


def test_counts_add_up_when_traffic_arrives(agent) -> None:  # noqa: ANN001
    a, broker = agent
    preds = predictions(0, 250)
    preds[4] = b"{broken"                                                    # invalid, model unreadable
    preds[5] = orjson.dumps({**orjson.loads(preds[5]), "score": 7.5})        # invalid, model m
    preds[6] = orjson.dumps({**orjson.loads(preds[7]), "prediction_id": "p6", "model": "nope"})  # unknown model
    bad = orjson.loads(preds[8])
    bad["features"] = {"x0": 1e9, "c0": "zzz", "extra": 1}                  # out of range, unseen, missing x1, unexpected
    preds[8] = orjson.dumps(bad)
    preds[9] = preds[10]                                                     # duplicate id p10
    broker.feed(PREDS, preds)
    labels = [orjson.dumps({"prediction_id": f"p{i}", "model": MODEL, "label": i % 2, "timestamp": T0 + i + 60})
              for i in range(0, 200, 2)]
    broker.feed(LABELS, labels + [b"nope"])
    a.loop(max_batches=4, poll_timeout_s=0.0)
    body = scrape(a)
    promtool_check(body)
    s = samples(body)
    events = by(s["driftwarden_events_total"], "model", "stream", "outcome")
    assert events[(MODEL, "predictions", "ok")] == 250 - 4  # the record with broken features is still a prediction
    assert events[(MODEL, "predictions", "invalid")] == 1
    assert events[("unknown", "predictions", "invalid")] == 2
    assert events[(MODEL, "predictions", "duplicate")] == 1
    assert events[(MODEL, "labels", "ok")] == 98  # p4's and p6's predictions never came: they wait
    assert by(s["driftwarden_join_pending_labels"], "model") == {(MODEL,): 2}
    assert events[("unknown", "labels", "invalid")] == 1
    assert events[(MODEL, "predictions", "late")] == 0 and events[(MODEL, "labels", "expired")] == 0
    # what every poll read is counted exactly once
    assert sum(v for (_, st, _), v in events.items() if st == "predictions") == 250
    assert sum(v for (_, st, _), v in events.items() if st == "labels") + 2 == 101
    assert by(s["driftwarden_dead_letters_total"], "topic") == {(PREDS,): 3, (LABELS,): 1}
    assert len(broker.dead) == 4
    schema = by(s["driftwarden_schema_violations_total"], "model", "feature", "kind")
    assert schema[(MODEL, "x1", "missing")] == 1 and schema[(MODEL, "extra", "unexpected")] == 1
    assert schema[(MODEL, "x0", "type")] == 0  # still exported, still 0
    skew = by(s["driftwarden_value_skew_total"], "model", "feature", "kind")
    assert skew[(MODEL, "x0", "out_of_range")] == 1 and skew[(MODEL, "c0", "unseen_category")] == 1
    assert skew[(MODEL, "x1", "null")] == 0
    assert by(s["driftwarden_windows_total"], "model")[(MODEL,)] == 2
    assert by(s["driftwarden_label_delay_seconds_count"], "model") == {(MODEL,): 98}
    # the zero series of a known label set never hide or double a real count
    assert len(s["driftwarden_events_total"]) == len(set(s["driftwarden_events_total"]))


# -- retraining jobs and the registry -------------------------------------------------------------

def job(i: int, status: str, verdict: str | None = None, model: str = MODEL) -> dict[str, Any]:
    return {"id": f"job-{i:06d}", "model": model, "launcher": "local", "snapshot": "/nowhere", "directory": "/nowhere",
            "status": status, "verdict": verdict, "created": float(i), "finished": float(i) + 1}


def test_job_counts_use_the_contract_statuses() -> None:
    jobs = [job(1, "succeeded", "promote"), job(2, "succeeded", "reject"), job(3, "failed", "failed"),
            job(4, "failed"), job(5, "running"), job(6, "succeeded", None, model="other"), job(7, "pending", model="o2")]
    totals, active = job_counts(jobs)
    assert totals == {(MODEL, "started"): 5, (MODEL, "succeeded"): 1, (MODEL, "rejected"): 1, (MODEL, "failed"): 2,
                      ("other", "started"): 1, ("other", "succeeded"): 1, ("o2", "started"): 1}
    assert active == {MODEL: 1, "o2": 1}
    assert job_counts([]) == ({}, {})


def register(state: Path, model: str) -> str:
    src = state / "trained"
    src.mkdir(parents=True, exist_ok=True)
    (src / "model.json").write_text("{}")
    (src / "weights.pt").write_bytes(b"")
    reg = ModelRegistry(state)
    v = reg.register(model, src, report={"verdict": "promote"})
    reg.promote(model, v.version)
    return v.version


class BrokenLauncher:
    kind = "broken"

    def launch(self, spec: Any) -> Any:
        raise RuntimeError("no cluster today")

    def reattach(self, spec: Any, ref: Any) -> None:
        return None


def test_jobs_and_promoted_version_from_the_job_store_and_registry(tmp_path: Path) -> None:
    a, broker = make_agent(tmp_path)
    state = Path(a.config.state_dir)
    (state / "jobs").mkdir(parents=True)
    for rec in (job(1, "succeeded", "promote"), job(2, "succeeded", "reject"), job(3, "failed")):
        (state / "jobs" / f"{rec['id']}.json").write_text(json.dumps(rec))
    register(state, MODEL)
    register(state, MODEL)  # v0002 promoted
    a.start()
    try:
        s = samples(scrape(a))
        assert by(s["driftwarden_retrain_jobs_total"], "model", "status") == {
            (MODEL, "started"): 3, (MODEL, "succeeded"): 1, (MODEL, "rejected"): 1, (MODEL, "failed"): 1}
        assert by(s["driftwarden_model_promoted_version"], "model") == {(MODEL,): 2}
        assert by(s["driftwarden_retrain_job_running"], "model") == {(MODEL,): 0}

        # the registry is not read per batch: a promotion behind the agent's back shows within
        # registry_interval_s, not at the next poll
        reads = []
        reg = a.retrain.jobs.registry
        real = reg.promoted
        reg.promoted = lambda m: reads.append(m) or real(m)  # type: ignore[method-assign]
        a.registry_interval_s = 3600.0
        register(state, MODEL)  # v0003
        for _ in range(20):
            a._publish()
        assert reads == [] and by(samples(scrape(a))["driftwarden_model_promoted_version"], "model")[(MODEL,)] == 2
        # ... but a job changing status refreshes it at once
        a.retrain.jobs.launchers["broken"] = BrokenLauncher()
        a.retrain.jobs.submit(MODEL, state / "snap", launcher="broken", force=True)  # recorded failed
        a._publish()
        assert reads == [MODEL]
        s = samples(scrape(a))
        assert by(s["driftwarden_model_promoted_version"], "model")[(MODEL,)] == 3
        assert by(s["driftwarden_retrain_jobs_total"], "model", "status")[(MODEL, "failed")] == 2
        # and without a job change, after registry_interval_s
        a.registry_interval_s = 0.0
        a._publish()
        assert reads == [MODEL, MODEL]
        promtool_check(scrape(a))
    finally:
        a.stop()


def test_a_running_job_is_a_gauge_and_counts_as_started(agent) -> None:  # noqa: ANN001
    a, _ = agent
    from agent.retrain.launchers import JobState

    class Handle:
        def poll(self) -> JobState:
            return JobState("running")

        def cancel(self) -> None: ...

        def log_tail(self, n: int = 50) -> list[str]:
            return []

        def ref(self) -> dict[str, Any]:
            return {}

    class Launcher:
        kind = "fake"

        def launch(self, spec: Any) -> Handle:
            return Handle()

        def reattach(self, spec: Any, ref: Any) -> None:
            return None

    jobs = a.retrain.jobs
    jobs.launchers["fake"] = Launcher()
    jobs.submit(MODEL, Path(a.config.state_dir) / "snap", launcher="fake", force=True)
    a._publish()
    s = samples(scrape(a))
    assert by(s["driftwarden_retrain_job_running"], "model") == {(MODEL,): 1}
    totals = by(s["driftwarden_retrain_jobs_total"], "model", "status")
    assert totals == {(MODEL, "started"): 1, (MODEL, "succeeded"): 0, (MODEL, "failed"): 0, (MODEL, "rejected"): 0}
    jobs.cancel(jobs.list()[1][0]["id"])


# -- the collector alone ----------------------------------------------------------------------------

class Col:
    def __init__(self, name: str, kind: str, capped: bool = False) -> None:
        self.name, self.kind, self.categories_capped = name, kind, capped


class Sch:
    def __init__(self, *cols: Col) -> None:
        self.columns = cols


def test_known_series_follow_what_the_schema_check_can_count() -> None:
    k = KnownSeries.of({"a": Sch(Col("n", "numeric"), Col("c", "categorical"), Col("many", "categorical", True)),
                        "b": Sch()}, ["p", "l", "p"], ("data_drift",))
    assert k.models == ("a", "b") and k.topics == ("p", "l") and k.incident_kinds == ("data_drift",)
    assert set(k.skew) == {("a", "n", "out_of_range"), ("a", "n", "null"), ("a", "c", "unseen_category"),
                           ("a", "c", "null"), ("a", "many", "null")}
    assert {kind for _, _, kind in k.schema} == {"missing", "type"}
    assert ("b", "labels", "expired") in k.events and ("b", "predictions", "late") in k.events
    assert ("b", "labels", "late") not in k.events  # a label is never late: it waits or expires


def test_an_empty_snapshot_still_exposes_valid_metrics() -> None:
    from prometheus_client import generate_latest

    from agent.outputs.metrics import make_registry

    registry, _, _ = make_registry(lambda: Snapshot())
    promtool_check(generate_latest(registry))
