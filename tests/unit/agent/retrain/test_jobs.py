"""The job manager: local trainer jobs end to end (subprocesses, log streamed, result read back,
version registered, promoted only when the trainer says promote, stopped at a gate); a user's
command registering its own model; a failing command, a hung job, a SIGKILLed trainer, unreadable
results: each recorded failed with its reason, never raised; one job per model and the cool-down; a
restart with jobs left running (reattached and polled, or failed "lost on restart", never silently
lost); the /jobs views, the watcher thread, and the counts by model and status."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from agent.retrain.jobs import JobManager, JobRefused
from agent.retrain.launchers import CommandLauncher, JobSpec, JobState, LocalLauncher, _alive
from agent.retrain.registry import ModelRegistry
from tests.support.data import data_file

PY = sys.executable
FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
            "size_of_downpayment", "driver_tenure"]
SCHEMA = {"task": "binary", "target": "repaid", "numeric": ["car_value", "debt_to_income_ratio", "loan_length",
                                                            "driver_tenure"],
          "categorical": ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"], "id_column": "id",
          "time_column": "timestamp", "weight_column": "__weight__", "served_column": "y_pred_proba"}
CONFIG = {"epochs": 20, "bootstrap_resamples": 200, "gradcheck": False, "overfit_steps": 300,
          "alignment_permutations": 1}
TRAIN = {"schema": SCHEMA, "config": CONFIG}


@pytest.fixture(scope="module")
def car_loan() -> pd.DataFrame:
    df = pd.read_csv(data_file("synthetic_car_loan_reference.csv"), nrows=6000)
    return df.sort_values("timestamp", kind="stable").iloc[:4000].reset_index(drop=True)


def write_snapshot(path: Path, frame: pd.DataFrame, weak_champion: bool) -> Path:
    """A dataset snapshot as the dataset builder writes it: train.parquet (with ``__weight__``),
    holdout.parquet (the newest rows), manifest.json. ``weak_champion`` replaces what the champion
    served on the holdout by noise, so that a sound challenger beats it."""
    path.mkdir(parents=True)
    train = frame.iloc[:3000].assign(__weight__=np.random.default_rng(0).uniform(0.5, 1.5, 3000))
    holdout = frame.iloc[3000:]
    if weak_champion:
        holdout = holdout.assign(y_pred_proba=np.random.default_rng(1).uniform(size=len(holdout)))
    train.to_parquet(path / "train.parquet")
    holdout.to_parquet(path / "holdout.parquet")
    (path / "manifest.json").write_text(json.dumps({"model": "car-loan", "seed": 0, "rows": {"train": 3000}}))
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def manager(state: Path, clock: Clock | None = None, **kwargs: Any) -> JobManager:
    launchers = kwargs.pop("launchers", None) or {"local": LocalLauncher(), "command": command("pass")}
    return JobManager(state, launchers, **({"cooldown_s": 0.0} | kwargs), **({"clock": clock} if clock else {}))


def command(code: str) -> CommandLauncher:
    return CommandLauncher([PY, "-c", code])


# ------------------------------------------------------------------------------------ end to end


def test_local_jobs_end_to_end(tmp_path: Path, car_loan: pd.DataFrame) -> None:
    """Three trainer subprocesses at once (three models): one promotes, one is healthy but does not
    beat its champion, one stops at a gate."""
    state = tmp_path / "state"
    m = manager(state)
    weak = write_snapshot(tmp_path / "weak", car_loan, weak_champion=True)
    strong = write_snapshot(tmp_path / "strong", car_loan, weak_champion=False)
    stopped = {"schema": SCHEMA, "config": {**CONFIG, "min_train_rows": 1_000_000}}
    rec = m.submit("car-loan", weak, incident="inc-1", train=TRAIN, timeout_s=120)
    reject = m.submit("car-loan-eu", strong, incident="inc-2", train=TRAIN, timeout_s=120)
    gate = m.submit("car-loan-us", weak, train=stopped, timeout_s=120)
    assert rec.status == "running" and rec.launcher == "local"
    status, body = m.get(rec.id)
    assert status == 200 and body["status"] == "running" and "ref" not in body
    done, reject, gate = (m.wait(r.id, timeout_s=120) for r in (rec, reject, gate))

    # promoted: the challenger beat the champion
    assert done.status == "succeeded", (done.reason, done.log_tail)
    assert (done.verdict, done.version, done.promoted, done.exit_code) == ("promote", "v0001", True, 0)
    log = (state / "jobs" / rec.id / "job.log").read_text()
    assert "epoch 20/20" in log and "HEALTHY: promote the challenger" in log     # the trainer's log, streamed
    assert any("done: succeeded" in line for line in done.log_tail)
    assert done.metrics["holdout_roc_auc"] > done.metrics["holdout_champion_roc_auc"]
    assert [g["name"] for g in done.gates][-1] == "champion" and all(g["passed"] for g in done.gates)
    sha = hashlib.sha256((weak / "manifest.json").read_bytes()).hexdigest()
    assert done.manifest_sha256 == sha
    reg = ModelRegistry(state)
    v1 = reg.version("car-loan", "v0001")
    assert (v1.incident, v1.job, v1.manifest_sha256, v1.verdict) == ("inc-1", rec.id, sha, "promote")
    assert reg.promoted("car-loan") == "v0001"
    assert reg.gates("car-loan", "v0001")["verdict"] == "promote"
    p = reg.load("car-loan").predict(car_loan.iloc[3000:3010])
    assert p.shape == (10,) and ((p >= 0) & (p <= 1)).all()

    # the champion served well: a healthy challenger that does not beat it is registered, not promoted
    assert reject.status == "succeeded", (reject.reason, reject.log_tail)
    assert (reject.verdict, reject.version, reject.promoted) == ("reject", "v0001", False)
    assert reg.promoted("car-loan-eu") is None and [v.verdict for v in reg.list("car-loan-eu")] == ["reject"]

    # stopped at a gate: failed with the gate and its figure, nothing registered
    assert (gate.status, gate.exit_code, gate.failed_gate, gate.verdict) == ("failed", 2, "data.shapes", "failed")
    assert gate.reason.startswith("exit code 2: gate data.shapes failed: ") and gate.version is None
    assert reg.list("car-loan-us") == []

    # the user's own trainer (command): its result.json is read back, its model registered and promoted
    out = state / "jobs" / rec.id / "output" / "model"
    code = ("import json, os, shutil, sys\nout = os.environ['DRIFTWARDEN_OUTPUT']\n"
            "assert os.path.isfile(os.environ['DRIFTWARDEN_MANIFEST'])\n"
            "shutil.copytree(sys.argv[1], os.path.join(out, 'trained'))\n"
            "json.dump({'promote': True, 'model_dir': 'trained', 'metrics': {'auc': 0.97, 'nan': float('nan')}},"
            " open(os.path.join(out, 'result.json'), 'w'))")
    m.launchers["command"] = CommandLauncher([PY, "-c", code, str(out)])
    third = m.wait(m.submit("car-loan", strong, launcher="command").id, timeout_s=30)
    assert (third.status, third.version, third.promoted, third.metrics) == (
        "succeeded", "v0002", True, {"auc": 0.97, "nan": None})
    assert reg.promoted("car-loan") == "v0002" and reg.version("car-loan", "v0002").job == third.id
    assert m.counts() == {("car-loan", "succeeded"): 2, ("car-loan-eu", "succeeded"): 1, ("car-loan-us", "failed"): 1}
    json.dumps(m.get(""), allow_nan=False)


def test_a_sigkilled_trainer_is_reported_failed_not_lost(tmp_path: Path, car_loan: pd.DataFrame) -> None:
    m = manager(tmp_path / "state")
    snap = write_snapshot(tmp_path / "snap", car_loan, weak_champion=True)
    rec = m.submit("car-loan", snap, train=TRAIN, timeout_s=120)
    log = tmp_path / "state" / "jobs" / rec.id / "job.log"
    end = time.monotonic() + 60
    while "train rows" not in (log.read_text() if log.exists() else "") and time.monotonic() < end:
        time.sleep(0.05)
    assert m.update() == []                      # mid-run
    os.kill(rec.ref["pid"], signal.SIGKILL)
    done = m.wait(rec.id, timeout_s=30)
    assert (done.status, done.reason, done.exit_code) == ("failed", "killed by SIGKILL", -9)
    assert any("train rows" in line for line in done.log_tail)
    assert m.submit("car-loan", snap, launcher="command").status == "running"   # the model is free again


# ----------------------------------------------------------------------------------------- policy


def test_one_job_per_model_and_the_cooldown(tmp_path: Path) -> None:
    clock = Clock()
    m = manager(tmp_path / "state", clock, cooldown_s=600.0,
                launchers={"command": command("import time; time.sleep(30)")})
    snap = tmp_path / "snap"
    snap.mkdir()
    first = m.submit("car-loan", snap, incident="inc-1")
    assert first.status == "running"
    with pytest.raises(JobRefused, match="already has job job-000001 running: one job per model"):
        m.submit("car-loan", snap, incident="inc-2")
    with pytest.raises(JobRefused, match="one job per model"):
        m.submit("car-loan", snap, force=True)          # force skips the cool-down only
    other = m.submit("fraud", snap)                       # another model is not held up
    assert other.status == "running"
    clock.now += 5
    assert m.cancel(first.id).status == "failed" and m.record(first.id).reason == "cancelled"
    clock.now += 100
    with pytest.raises(JobRefused, match="cooling down") as e:
        m.submit("car-loan", snap, incident="inc-2")
    assert e.value.retry_after_s == pytest.approx(500)
    forced = m.submit("car-loan", snap, force=True)
    m.cancel(forced.id)
    clock.now += 601
    assert m.submit("car-loan", snap).status == "running"
    for r in m.records():
        m.cancel(r.id)
    assert all(not _alive(r.ref["pid"], None) for r in m.records() if r.ref)
    assert m.counts() == {("car-loan", "failed"): 3, ("fraud", "failed"): 1}
    with pytest.raises(ValueError, match="launcher"):
        m.submit("car-loan", snap, launcher="slurm")
    with pytest.raises(ValueError, match="model name"):
        m.submit("../x", snap)


class FakeHandle:
    def __init__(self, states: list[JobState | Exception]) -> None:
        self.states = states
        self.cancelled = False

    def poll(self) -> JobState:
        s = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(s, Exception):
            raise s
        return s

    def cancel(self) -> None:
        self.cancelled = True

    def log_tail(self, n: int = 50) -> list[str]:
        raise RuntimeError("no logs today")

    def ref(self) -> dict[str, Any]:
        return {"fake": True}


class FakeLauncher:
    kind: ClassVar[str] = "fake"

    def __init__(self, handle: FakeHandle | Exception, reattachable: bool = False) -> None:
        self.handle = handle
        self.reattachable = reattachable

    def launch(self, job: JobSpec) -> FakeHandle:
        job.prepare()
        if isinstance(self.handle, Exception):
            raise self.handle
        return self.handle

    def reattach(self, job: JobSpec, ref: Mapping[str, Any]) -> FakeHandle | None:
        return self.handle if self.reattachable and not isinstance(self.handle, Exception) else None


def test_failing_and_hung_jobs_are_recorded_never_raised(tmp_path: Path) -> None:
    clock = Clock()
    snap = tmp_path / "snap"
    snap.mkdir()
    # the launcher cannot start it
    m = manager(tmp_path / "a", clock, launchers={"fake": FakeLauncher(ConnectionError("cluster unreachable"))})
    rec = m.submit("car-loan", snap)
    assert rec.status == "failed" and rec.reason == "launch failed: ConnectionError: cluster unreachable"
    # its status cannot be read: retried, then failed
    h = FakeHandle([RuntimeError("API down")])
    m = manager(tmp_path / "b", clock, max_poll_errors=3, launchers={"fake": FakeLauncher(h)})
    rec = m.submit("car-loan", snap)
    assert [m.update(), m.update()] == [[], []] and m.record(rec.id).status == "running"
    assert m.update() == [rec.id]
    assert m.record(rec.id).reason == "status unavailable after 3 polls: RuntimeError: API down" and h.cancelled
    # hung: it never ends, and gives no end past its timeout plus the grace: cancelled, failed
    h = FakeHandle([JobState("running")])
    m = manager(tmp_path / "c", clock, deadline_grace_s=30, launchers={"fake": FakeLauncher(h)})
    rec = m.submit("car-loan", snap, timeout_s=60)
    clock.now += 89
    assert m.update() == []
    clock.now += 2
    assert m.update() == [rec.id] and h.cancelled
    assert m.record(rec.id).reason == "hung: no end 30 s past its timeout of 60 s; cancelled"
    # a failing command: its exit code and the end of its log
    m = manager(tmp_path / "d", launchers={"command": command(
        "import sys\nfor i in range(100): print('line', i)\nprint('boom: CUDA out of memory'); sys.exit(3)")})
    rec = m.wait(m.submit("car-loan", snap).id, timeout_s=30)
    assert (rec.status, rec.reason, rec.exit_code) == ("failed", "exit code 3", 3)
    assert len(rec.log_tail) == 50 and rec.log_tail[-1] == "boom: CUDA out of memory"
    assert m.get(rec.id)[1]["log_tail"][-1] == "boom: CUDA out of memory"
    # a hung command: killed at its timeout
    hang = command("import time; print('start', flush=True); time.sleep(60)")
    m = manager(tmp_path / "e", launchers={"command": hang})
    rec = m.wait(m.submit("car-loan", snap, timeout_s=0.5).id, timeout_s=20)
    assert (rec.status, rec.reason) == ("failed", "timed out after 0.5 s: killed") and rec.log_tail[-1] == "start"
    # it exits 0 but its result is garbage, or points outside its folder
    for i, (result, why) in enumerate([("{not json", "is not JSON"),
                                        ('{"model_dir": "../../../../etc"}', "outside the job's output folder"),
                                        ('{"model_dir": "nothing"}', "holds no saved model")]):
        code = f"import os; open(os.environ['DRIFTWARDEN_OUTPUT'] + '/result.json', 'w').write({result!r})"
        m = manager(tmp_path / f"f{i}", launchers={"command": command(code)})
        rec = m.wait(m.submit("car-loan", snap).id, timeout_s=30)
        assert rec.status == "failed" and rec.reason.startswith("finishing the job: ") and why in rec.reason, rec.reason
    # and a result that says the trainer failed
    m = manager(tmp_path / "g", launchers={"command": command(
        "import os; open(os.environ['DRIFTWARDEN_OUTPUT'] + '/result.json', 'w')"
        ".write('{\"status\": \"failed\", \"reason\": \"holdout empty\"}')")})
    rec = m.wait(m.submit("car-loan", snap).id, timeout_s=30)
    assert (rec.status, rec.reason) == ("failed", "holdout empty")


# ---------------------------------------------------------------------------------------- restart


def test_a_restart_with_jobs_left_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snap = tmp_path / "snap"
    snap.mkdir()
    ok = command("import json, os, time; time.sleep(1.5)\n"
                 "json.dump({'status': 'succeeded', 'metrics': {'auc': 0.9}},"
                 " open(os.environ['DRIFTWARDEN_OUTPUT'] + '/result.json', 'w'))")
    silent = command("import time; time.sleep(30)")
    fake = FakeLauncher(FakeHandle([JobState("running")]))
    launchers = {"ok": ok, "silent": silent, "fake": fake}
    m1 = manager(state, launchers=launchers)
    running = m1.submit("car-loan", snap, launcher="ok")
    killed = m1.submit("fraud", snap, launcher="silent")
    unfindable = m1.submit("churn", snap, launcher="fake")
    # the agent dies (no stop); while it is down, one job's process is killed too
    del m1
    os.kill(killed.ref["pid"], signal.SIGKILL)
    time.sleep(0.2)
    # a record left pending (the agent died while launching), and one of a launcher no longer configured
    for job_id, kind, status in (("job-000010", "ok", "pending"), ("job-000011", "gone", "running")):
        (state / "jobs" / f"{job_id}.json").write_text(json.dumps(
            {"id": job_id, "model": f"m{job_id[-2:]}", "launcher": kind, "snapshot": str(snap),
             "directory": str(state / "jobs" / job_id), "status": status, "created": 1.0,
             "ref": None if status == "pending" else {"pid": 1}}))

    m2 = manager(state, launchers=launchers)
    assert m2.record(running.id).status == "running" and m2.record(running.id).reattached
    with pytest.raises(JobRefused, match="one job per model"):
        m2.submit("car-loan", snap, launcher="ok")        # still held by the reattached job
    lost = m2.record(unfindable.id)
    assert (lost.status, lost.reason) == ("failed", "lost on restart: the fake launcher cannot find it again")
    assert m2.record("job-000010").reason == "lost on restart: it was being launched when the agent stopped"
    assert m2.record("job-000011").reason == "lost on restart: launcher 'gone' is no longer configured"
    done = m2.wait(running.id, timeout_s=30)
    assert (done.status, done.metrics) == ("succeeded", {"auc": 0.9})
    dead = m2.wait(killed.id, timeout_s=30)
    assert dead.status == "failed"
    assert dead.reason.startswith("lost on restart: the process ended while the agent was down")
    assert m2.submit("car-loan", snap, launcher="ok").id == "job-000012"   # ids go on after the restart
    # and a third start sees the same, persisted outcomes
    m3 = manager(state, launchers=launchers)
    assert {r.id: r.status for r in m3.records()} == {r.id: r.status for r in m2.records()}
    m3.cancel("job-000012")


def test_the_jobs_views_and_counts(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    m = manager(tmp_path / "state", poll_interval_s=0.05, launchers={
        "ok": command("print('hello')"), "bad": command("import sys; sys.exit(1)")})
    assert m.get("") == (200, []) and m.list() == (200, [])
    a = m.wait(m.submit("car-loan", snap, launcher="ok", incident="inc-1").id, timeout_s=30)
    b = m.wait(m.submit("fraud", snap, launcher="bad").id, timeout_s=30)
    c = m.wait(m.submit("car-loan", snap, launcher="bad").id, timeout_s=30)
    status, body = m.get("")
    assert status == 200 and [j["id"] for j in body] == [c.id, b.id, a.id]
    assert set(body[0]) == {"id", "model", "incident", "launcher", "status", "reason", "created", "started",
                            "finished", "verdict", "version", "promoted"}
    status, one = m.get(a.id)
    assert status == 200 and one["status"] == "succeeded" and one["incident"] == "inc-1"
    assert {"gates", "metrics", "log_tail", "exit_code", "timeout_s"} <= set(one) and one["log_tail"][-1] == "hello"
    assert m.get("job-999999")[0] == 404
    assert m.counts() == {("car-loan", "succeeded"): 1, ("car-loan", "failed"): 1, ("fraud", "failed"): 1}
    m.start()
    try:
        d = m.submit("churn", snap, launcher="ok")
        end = time.monotonic() + 20
        while m.record(d.id).status != "succeeded" and time.monotonic() < end:   # the watcher thread polls
            time.sleep(0.05)
        assert m.record(d.id).status == "succeeded"
    finally:
        m.stop()
    with pytest.raises(ValueError, match="launchers"):
        JobManager(tmp_path / "x", {})
    with pytest.raises(ValueError, match="cooldown_s"):
        JobManager(tmp_path / "x", {"ok": command("pass")}, cooldown_s=-1)
