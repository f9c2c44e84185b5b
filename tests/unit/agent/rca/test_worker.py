"""The agent's root-cause analyses, off the hot path: real window judgements (Pipeline ->
ModelMonitor -> IncidentWatch) open incidents, RCAWorker snapshots their windows on the calling
thread and analyses them on its own; results land on the incident and survive a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from agent.config import RCAConfig, build_config
from agent.incidents.store import IncidentStore
from agent.incidents.watch import IncidentWatch
from agent.ingest.broker import RecordBatch
from agent.monitor.model import ModelMonitor
from agent.monitor.reference import ModelReference
from agent.pipeline import Pipeline
from agent.rca.snapshot import WINDOW, take_snapshot
from agent.rca.worker import RCAWorker
from agent.state.counters import Counters

NUMERIC = [f"x{j}" for j in range(4)]
FEATURES = NUMERIC + ["c0"]
T0 = 1_790_000_000


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(n, len(NUMERIC)))
    p = 1.0 / (1.0 + np.exp(-2.0 * x[:, :2].sum(axis=1)))
    cols: dict[str, Any] = {name: x[:, j] for j, name in enumerate(NUMERIC)}
    cols["c0"] = rng.choice(["a", "b", "c"], n)
    cols["y"] = (rng.random(n) < p).astype(int)
    cols["y_pred"] = (p > 0.5).astype(int)
    cols["y_proba"] = p
    return pd.DataFrame(cols)


class Rig:
    """A monitor fed through the real pipeline, its incident rules and an RCA worker."""

    def __init__(self, tmp_path: Path, rca: RCAConfig | None = None) -> None:
        ref = tmp_path / "ref.parquet"
        frame(6000, 1).to_parquet(ref)
        self.cfg = build_config({"models": {"m": {
            "task": "binary_classification", "reference": str(ref), "target": "y", "prediction": "y_pred",
            "score": "y_proba", "features": FEATURES, "segments": ["c0"], "window": {"size": 1000}}}})
        self.counters = Counters()
        self.store = IncidentStore(self.counters, rca=True)
        holder: dict[str, IncidentWatch] = {}
        self.mon = ModelMonitor(ModelReference.load("m", self.cfg.models["m"]), self.counters,
                                on_result=lambda r: holder["w"].observe(r))
        holder["w"] = IncidentWatch(self.cfg.models, {"m": self.mon}, self.store)
        self.pipe = Pipeline({"m": self.mon}, self.counters, "predictions", "labels")
        self.done: list[tuple[str, str, float]] = []
        self.worker = RCAWorker(self.store, {"m": self.mon}, rca or RCAConfig(n_boot=50),
                                on_done=lambda *a: self.done.append(a))
        self.sent = 0

    def feed(self, traffic: pd.DataFrame, step: int = 500) -> None:
        rows = traffic[FEATURES].to_numpy(dtype=object).tolist()
        for lo in range(0, len(traffic), step):
            hi = min(lo + step, len(traffic))
            preds = [orjson.dumps({"prediction_id": f"p{self.sent + i}", "model": "m", "timestamp": T0 + self.sent + i,
                                   "features": dict(zip(FEATURES, rows[i])), "prediction": int(traffic.y_pred.iloc[i]),
                                   "score": float(traffic.y_proba.iloc[i])}) for i in range(lo, hi)]
            labs = [orjson.dumps({"prediction_id": f"p{self.sent + i}", "model": "m", "label": int(traffic.y.iloc[i]),
                                  "timestamp": T0 + self.sent + i}) for i in range(lo, hi)]
            offs = np.arange(self.sent + lo, self.sent + hi)
            n = hi - lo
            self.pipe.process([RecordBatch("predictions", 0, offs, np.full(n, T0 * 1000), [None] * n, preds),
                               RecordBatch("labels", 0, offs, np.full(n, T0 * 1000), [None] * n, labs)])
            self.pipe.evaluate()
            self.worker.tick()
        self.sent += len(traffic)

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.worker.idle() or self.store.rca_due():
            self.worker.tick()
            assert time.monotonic() < deadline, f"analyses still due: {self.store.rca_due()}"
            time.sleep(0.05)

    def incidents(self) -> list[dict[str, Any]]:
        return self.store.get("")[1]


@pytest.fixture()
def rig(tmp_path: Path):  # noqa: ANN201
    r = Rig(tmp_path)
    r.worker.start()
    yield r
    r.worker.stop()


def test_unit_bug_incident_gets_an_analysis_naming_the_feature(rig: Rig) -> None:
    bad = frame(5000, 3)
    bad["x2"] = bad["x2"] * 1000.0
    rig.feed(pd.concat([frame(3000, 2), bad], ignore_index=True))
    rig.wait()
    incs = [i for i in rig.incidents() if i["kind"] in ("data_drift", "data_quality")]
    assert incs, rig.incidents()
    for inc in incs:
        rca = inc["rca"]
        assert rca["status"] == "done", rca
        top = rca["causes"][0]
        assert (top["cause"], top["feature"]) == ("data_quality", "x2"), rca["causes"]
        assert top["evidence"]["check"] == "scale_change" and top["evidence"]["detail"]["factor"] == 1000.0
        assert rca["actions"][0]["action"] == "fix_pipeline" and rca["actions"][0]["feature"] == "x2"
        assert rca["rows"] >= 1000 and rca["seconds"] > 0 and rca["windows"]
    assert ("m", "done") in {(m, s) for m, s, _ in rig.done}
    assert rig.store.causes_open()[("m", "data_quality")] > 0.9


def test_concept_drift_in_a_segment_is_named_there(rig: Rig) -> None:
    moved = frame(5000, 3)
    moved["y"] = np.where(moved.c0 == "a", 1 - moved.y, moved.y)  # P(y|x) flips where c0 = a
    rig.feed(pd.concat([frame(3000, 2), moved], ignore_index=True))
    rig.wait()
    perf = [i for i in rig.incidents() if i["kind"] in ("performance_drop", "concept_drift")]
    assert perf, [i["kind"] for i in rig.incidents()]
    rca = perf[0]["rca"]
    assert rca["status"] == "done", rca
    assert rca["causes"][0]["cause"] == "concept_drift" and rca["causes"][0]["segment"] == "c0=a", rca["causes"]
    ev = rca["evaluate"]
    assert ev["metric"] == "roc_auc" and ev["drop"]["lo"] > 0 and ev["windows"]
    assert any(a["action"] == "retrain" and "c0=a" in a["segments"] for a in rca["actions"])


def test_snapshot_copies_the_windows_rows_with_their_labels(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    traffic = frame(3000, 2)
    r.feed(traffic)
    snap = take_snapshot(r.mon, {"id": "x", "first_window": 1}, context=0, max_rows=10_000)
    cur = snap.current
    assert set(snap.windows) == set(cur[WINDOW]) and min(snap.windows) >= 1
    by_id = traffic.set_index(pd.Index([f"p{i}" for i in range(len(traffic))]))
    rows = by_id.loc[cur["id"]]
    np.testing.assert_array_equal(cur["x0"].to_numpy(dtype=float), rows["x0"].to_numpy())
    assert list(cur["c0"]) == list(rows["c0"])
    labelled = cur["y"].notna().to_numpy()
    assert labelled.any()
    np.testing.assert_array_equal(cur.loc[labelled, "y"].astype(int).to_numpy(), rows["y"].to_numpy()[labelled])
    # a copy: the live window is not touched by the worker
    cur.loc[0, "x0"] = 1e9
    assert take_snapshot(r.mon, {"id": "x", "first_window": 1}, context=0, max_rows=10_000).current.loc[0, "x0"] != 1e9
    assert len(take_snapshot(r.mon, {"id": "x"}, context=1, max_rows=300).current) == 300


def test_too_few_rows_fails_the_analysis_with_the_reason_and_the_incident_stays(tmp_path: Path) -> None:
    r = Rig(tmp_path, RCAConfig(min_rows=100_000, n_boot=0))
    r.store.on_alerts([{"status": "firing", "fingerprint": "f1", "startsAt": "2026-01-01T00:00:00Z",
                        "labels": {"alertname": "DriftwardenFeatureDrift", "model": "m"}}])
    r.feed(frame(2000, 2))
    (inc,) = r.incidents()
    assert inc["status"] == "open" and inc["rca"]["status"] == "failed"
    assert "too few rows" in inc["rca"]["reason"]


def test_unknown_model_fails_and_an_analysis_that_raises_fails_with_its_exception(tmp_path: Path) -> None:
    r = Rig(tmp_path, RCAConfig(n_boot=0, min_rows=20))
    r.store.on_alerts([{"status": "firing", "fingerprint": "f1", "startsAt": "2026-01-01T00:00:00Z",
                        "labels": {"alertname": "X", "model": "nope"}}])
    r.worker.tick()
    assert "not monitored" in r.store.get("inc-1")[1]["rca"]["reason"]
    # a reference without the feature columns makes analyse() raise inside the worker thread
    r.feed(frame(1500, 2))
    r.mon.ref.frame = r.mon.ref.frame.drop(columns=["x1"])
    r.store.on_alerts([{"status": "firing", "fingerprint": "f2", "startsAt": "2026-01-01T00:00:00Z",
                        "labels": {"alertname": "X", "model": "m"}}])
    r.worker.start()
    try:
        r.wait()
    finally:
        r.worker.stop()
    rca = r.store.get("inc-2")[1]["rca"]
    assert rca["status"] == "failed" and "ValueError" in rca["reason"] and "x1" in rca["reason"]
    assert ("m", "failed") in {(m, s) for m, s, _ in r.done}


def test_analyses_survive_a_restart_and_an_interrupted_one_runs_again(rig: Rig) -> None:
    bad = frame(4000, 3)
    bad["x2"] = bad["x2"] * 1000.0
    rig.feed(pd.concat([frame(2000, 2), bad], ignore_index=True))
    rig.wait()
    state = orjson.loads(orjson.dumps(rig.store.state()))  # as the checkpoint writes it
    back = IncidentStore.from_state(state, rig.counters, rca=True)
    assert back.get("")[1] == rig.incidents()
    first = back.get("")[1][0]["id"]
    back.set_rca(first, {"status": "running", "started_at": 1.0})
    again = IncidentStore.from_state(orjson.loads(orjson.dumps(back.state())), rig.counters, rca=True)
    assert again.get(first)[1]["rca"]["status"] == "pending"
    assert first in [i["id"] for i in again.rca_due()]


def test_stored_analyses_stay_bounded(tmp_path: Path) -> None:
    store = IncidentStore(Counters(), limit=5, rca=True, rca_detail=2)
    for k in range(8):
        store.on_alerts([{"status": "firing", "fingerprint": f"f{k}", "startsAt": "2026-01-01T00:00:00Z",
                          "labels": {"alertname": "X", "model": "m"}}])
        store.set_rca(f"inc-{k + 1}", {"status": "done", "evaluate": {"big": list(range(1000))}, "causes": [],
                                       "actions": [{"action": "relabel", "ids": list(range(500))}]})
    incs = store.get("")[1]
    assert len(incs) == 5
    assert ["evaluate" in i["rca"] for i in incs] == [False, False, False, True, True]
    assert all(len(a["ids"]) <= 20 for i in incs[:3] for a in i["rca"]["actions"])
