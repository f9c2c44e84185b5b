"""The agent's retraining loop without a broker: real window judgements open an incident, its
analysis asks to retrain, the controller builds the dataset from the labelled-traffic store and
the reference, and the local launcher trains in a subprocess with every gate; the outcome lands on
the incident, the job record and the registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.config import RCAConfig
from agent.retrain.controller import RetrainController
from agent.retrain.jobs import JobManager
from agent.retrain.launchers import LocalLauncher
from agent.retrain.registry import ModelRegistry
from tests.support.rig import Rig, frame


def make(tmp_path: Path, **retrain: Any) -> tuple[Rig, RetrainController]:
    holder: dict[str, RetrainController] = {}
    rig = Rig(tmp_path, RCAConfig(n_boot=50),
              model={"window": {"size": 1000, "label_retention": 2},
                     "retrain": {"enabled": True, "min_rows": 1000, "epochs": 6, "cooldown_s": 0, **retrain}},
              on_final=lambda mon, w: holder["c"].on_final(mon, w))
    state = Path(rig.cfg.state_dir)
    jobs = JobManager(state, {"local": LocalLauncher()}, ModelRegistry(state), default_launcher="local",
                      cooldown_s=0, poll_interval_s=0.5)
    holder["c"] = RetrainController(state, rig.cfg.models, {"m": rig.mon}, rig.store, jobs)
    return rig, holder["c"]


def test_concept_drift_incident_ends_in_a_job_that_ran_every_gate(tmp_path: Path) -> None:
    rig, ctl = make(tmp_path)
    rig.worker.start()
    ctl.start()
    try:
        moved = frame(7000, 3)
        moved["y"] = np.where(moved.c0 == "a", 1 - moved.y, moved.y)
        rig.feed(pd.concat([frame(2000, 2), moved], ignore_index=True))
        rig.wait()
        stored = ctl.traffic["m"].windows()
        assert stored == sorted(set(stored)) and len(stored) >= 5  # each finalised window once
        assert ctl.tick() >= 1
        deadline_jobs: list[dict[str, Any]] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 240:
            incs = [i for i in rig.incidents() if i.get("retrain", {}).get("status") not in (None, "queued")]
            if incs:
                deadline_jobs = incs
                break
            time.sleep(0.2)
        assert deadline_jobs, [i.get("retrain") for i in rig.incidents()]
        inc = deadline_jobs[0]
        assert inc["retrain"]["status"] == "submitted", inc["retrain"]
        assert inc["rca"]["causes"][0]["cause"] == "concept_drift"
        rec = ctl.jobs.wait(inc["retrain"]["job"], timeout_s=240)
        assert rec.status in ("succeeded", "failed"), rec
        status, body = ctl.jobs.get(rec.id)
        assert status == 200 and body["gates"], body
        names = [g["name"] for g in body["gates"]]
        assert {"data.leakage", "init.loss", "grad.flow", "overfit.one_batch", "train.finite"} <= set(names), names
        if rec.status == "failed":  # the run stopped at the failing gate, which the reason names
            failed = [g for g in body["gates"] if not g["passed"]]
            assert failed and failed[0]["name"] == names[-1] and failed[0]["name"] in body["reason"], body
        else:
            assert "champion" in names
            versions = ModelRegistry(Path(rig.cfg.state_dir)).list("m")
            assert versions and versions[-1].incident == inc["id"]
        counts = ctl.jobs.counts()
        assert sum(n for (m, _), n in counts.items() if m == "m") == 1
        # the same incident is not retrained twice
        assert ctl.tick() == 0
    finally:
        ctl.stop()
        rig.worker.stop()


def test_too_little_stored_traffic_waits_with_the_reason(tmp_path: Path) -> None:
    rig, ctl = make(tmp_path, min_rows=100_000)
    out = ctl.launch("inc-x", "m", {"action": "retrain", "segments": []})
    assert out["status"] == "waiting" and "min_rows" in out["reason"] and out["retry_at"] > time.time()


def _retrain_status(rig: Rig, wanted: str, timeout_s: float = 60.0) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        for inc in rig.incidents():
            if (inc.get("retrain") or {}).get("status") == wanted:
                return inc
        time.sleep(0.1)
    raise AssertionError(f"no incident's retrain is {wanted!r}: {[i.get('retrain') for i in rig.incidents()]}")


def test_a_job_waits_for_the_incidents_own_windows_then_starts(tmp_path: Path) -> None:
    """Traffic from before the incident is what the model already knew: the dataset waits until
    min_rows labelled rows of the incident's own windows are stored, then the job is submitted."""
    rig, ctl = make(tmp_path, min_rows=3000)
    ctl.retry_s = 0.0
    rig.worker.start()
    ctl.start()
    try:
        def moved(n: int, seed: int) -> pd.DataFrame:
            f = frame(n, seed)
            f["y"] = np.where(f.c0 == "a", 1 - f.y, f.y)
            return f

        rig.feed(pd.concat([frame(3000, 2), moved(4000, 3)], ignore_index=True))
        rig.wait()
        ctl.tick()
        inc = _retrain_status(rig, "waiting")
        first = inc["first_window"]
        stored = ctl.traffic["m"].read()
        since = int((stored["__window__"] >= first).sum())
        assert since < 3000 and f"{since} labelled rows stored since window {first}" in inc["retrain"]["reason"]
        assert len(stored) >= 3000               # enough rows in all, but most from before the incident
        rig.feed(moved(4000, 4))
        rig.wait()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and (inc := next(i for i in rig.incidents() if i["id"] == inc["id"])
                                              )["retrain"]["status"] != "submitted":
            ctl.tick()
            time.sleep(0.1)
        assert inc["retrain"]["status"] == "submitted", inc["retrain"]
        assert inc["retrain"]["rows"]["train_recent"] + inc["retrain"]["rows"]["holdout"] >= 3000
    finally:
        ctl.stop()
        rig.worker.stop()


def test_driftwarden_retrain_by_hand_on_a_stopped_agents_state(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """`driftwarden retrain --config --incident` reads the incident from the checkpoint and the rows
    from the traffic store, runs the job with every gate and prints each."""
    import yaml

    from agent.cli import main
    from agent.state.checkpoint import CheckpointStore

    rig, ctl = make(tmp_path)
    rig.worker.start()
    try:
        moved = frame(7000, 3)
        moved["y"] = np.where(moved.c0 == "a", 1 - moved.y, moved.y)
        rig.feed(pd.concat([frame(2000, 2), moved], ignore_index=True))
        rig.wait()
    finally:
        rig.worker.stop()
    state = Path(rig.cfg.state_dir)
    CheckpointStore(state).save({}, rig.counters, {"m": rig.mon}, rig.store.state())
    m = rig.cfg.models["m"]
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(state), "models": {"m": {
        "task": m.task, "reference": str(m.reference), "target": m.target, "prediction": m.prediction,
        "score": m.score, "features": list(m.features or []), "segments": list(m.segments),
        "window": {"size": 1000, "label_retention": 2},
        "retrain": {"enabled": True, "min_rows": 1000, "epochs": 6, "cooldown_s": 0}}}}))
    inc = next(i for i in rig.incidents() if i["rca"]["status"] == "done")
    code = main(["retrain", "--config", str(config), "--incident", inc["id"]])
    out = capsys.readouterr().out
    assert code in (0, 1) and "job-" in out and "PASS data.leakage" in out and "PASS grad.flow" in out, out
    assert main(["retrain", "--config", str(config), "--incident", "inc-404"]) == 2
