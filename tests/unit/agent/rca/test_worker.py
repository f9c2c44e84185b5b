"""The agent's root-cause analyses, off the hot path: real window judgements (Pipeline ->
ModelMonitor -> IncidentWatch) open incidents, RCAWorker snapshots their windows on the calling
thread and analyses them on its own; results land on the incident and survive a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from agent.config import RCAConfig
from agent.incidents.store import IncidentStore
from agent.rca.snapshot import WINDOW, take_snapshot
from agent.state.counters import Counters
from tests.support.rig import Rig, frame


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
                          "labels": {"alertname": f"X{k}", "model": "m"}}])
        store.set_rca(f"inc-{k + 1}", {"status": "done", "evaluate": {"big": list(range(1000))}, "causes": [],
                                       "actions": [{"action": "relabel", "ids": list(range(500))}]})
    incs = store.get("")[1]
    assert len(incs) == 5
    assert ["evaluate" in i["rca"] for i in incs] == [False, False, False, True, True]
    assert all(len(a["ids"]) <= 20 for i in incs[:3] for a in i["rca"]["actions"])
