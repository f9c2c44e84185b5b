"""Launchers: a user's command gets the snapshot paths and streams its log; a hung one is killed
(its whole process group) at its timeout; a failing one reports its exit code; a process is found
again by pid after a restart; the local entry point reports a job it cannot run. The kubernetes
launcher against a loopback server speaking the Jobs API (create, status polling, duplicate refused,
failure, vanished Job, cancel, log tail), and its Job manifest validated offline against the
Kubernetes schema."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client as k8s
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.retrain.jobs import JobManager
from agent.retrain.kubernetes_launcher import KubernetesLauncher, KubernetesOptions, build_job, job_manifest, job_name
from agent.retrain.launchers import CommandLauncher, DuplicateJob, JobSpec, LaunchError, LocalLauncher, _alive, _proc_stat

PY = sys.executable


def spec(tmp_path: Path, timeout_s: float = 30.0, job_id: str = "job-000001", incident: str | None = "inc-7",
         model: str = "car-loan") -> JobSpec:
    snap = tmp_path / "snapshot"
    snap.mkdir(exist_ok=True)
    (snap / "manifest.json").write_text('{"seed": 0}')
    return JobSpec(job_id, model, tmp_path / "jobs" / job_id, snap, incident, timeout_s)


def finish(handle: Any, timeout_s: float = 20.0) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        state = handle.poll()
        if state.done:
            return state
        time.sleep(0.05)
    raise AssertionError("the job did not end")


# ----------------------------------------------------------------------------------------- command


def test_a_command_gets_the_paths_and_streams_its_log(tmp_path: Path) -> None:
    job = spec(tmp_path)
    code = ("import json, os, sys, time\n"
            "print('args', sys.argv[1:], flush=True)\n"
            "for k in ('SNAPSHOT', 'MANIFEST', 'OUTPUT', 'JOB_ID', 'MODEL', 'INCIDENT', 'EXTRA'):\n"
            "    print(k, os.environ.get('DRIFTWARDEN_' + k, os.environ.get(k)), flush=True)\n"
            "open(os.path.join(os.environ['DRIFTWARDEN_OUTPUT'], 'result.json'), 'w').write(json.dumps({'ok': 1}))\n"
            "time.sleep(1.0)\nprint('done', flush=True)")
    launcher = CommandLauncher([PY, "-c", code, "{snapshot}", "--manifest={manifest}"], env={"EXTRA": "yes"})
    handle = launcher.launch(job)
    time.sleep(0.3)
    assert handle.poll().status == "running"
    end = time.monotonic() + 10
    while "INCIDENT" not in "\n".join(handle.log_tail(20)) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any("done" == line for line in handle.log_tail(20))   # streamed while it runs
    state = finish(handle)
    assert (state.status, state.exit_code, state.reason) == ("succeeded", 0, None)
    lines = handle.log_tail(20)
    assert lines[0].startswith("$ ") and lines[-1] == "done"
    assert f"args ['{job.snapshot}', '--manifest={job.manifest}']" in lines
    assert {f"SNAPSHOT {job.snapshot}", f"MANIFEST {job.manifest}", f"OUTPUT {job.output}", "JOB_ID job-000001",
            "MODEL car-loan", "INCIDENT inc-7", "EXTRA yes"} <= set(lines)
    assert json.loads((job.output / "result.json").read_text()) == {"ok": 1}
    assert json.loads(job.spec_file.read_text())["snapshot"] == str(job.snapshot)
    assert handle.log_tail(2) == lines[-2:]


def test_a_hung_command_is_killed_with_its_children_at_its_timeout(tmp_path: Path) -> None:
    job = spec(tmp_path, timeout_s=0.5)
    # ignores SIGTERM, and leaves a grandchild: the whole group must go
    code = ("import signal, subprocess, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('child', p.pid, flush=True)\ntime.sleep(60)")
    t = time.monotonic()
    handle = CommandLauncher([PY, "-c", code]).launch(job)
    end = time.monotonic() + 10
    while not any(line.startswith("child") for line in handle.log_tail(5)) and time.monotonic() < end:
        time.sleep(0.05)
    grandchild = int(next(line for line in handle.log_tail(5) if line.startswith("child")).split()[1])
    state = finish(handle)
    assert state.status == "failed" and state.reason == "timed out after 0.5 s: killed"
    assert time.monotonic() - t < 8
    assert not _alive(handle.pid, None)
    time.sleep(0.2)
    assert not _alive(grandchild, None)
    assert handle.poll() == state   # the outcome is final


def test_a_failing_command_reports_its_exit_code_and_log(tmp_path: Path) -> None:
    code = "import sys; print('boom: the trainer broke'); sys.exit(3)"
    handle = CommandLauncher([PY, "-c", code]).launch(spec(tmp_path))
    state = finish(handle)
    assert (state.status, state.exit_code, state.reason) == ("failed", 3, "exit code 3")
    assert handle.log_tail(1) == ["boom: the trainer broke"]
    with pytest.raises(LaunchError, match="cannot start"):
        CommandLauncher(["/nonexistent/trainer"]).launch(spec(tmp_path, job_id="job-000002"))
    job3 = spec(tmp_path, job_id="job-000003")
    assert CommandLauncher(["x", "{nope}", '{"a": 1}', "--out={output}/m"]).command(job3) == [
        "x", "{nope}", '{"a": 1}', f"--out={job3.output}/m"]
    for bad in ([], "python train.py", [""]):
        with pytest.raises(ValueError, match="argv"):
            CommandLauncher(bad)  # type: ignore[arg-type]


def test_a_process_is_found_again_after_a_restart(tmp_path: Path) -> None:
    job = spec(tmp_path)
    code = ("import json, os, time; time.sleep(0.8)\n"
            "open(os.environ['DRIFTWARDEN_OUTPUT'] + '/result.json', 'w').write(json.dumps({'status': 'succeeded'}))")
    launcher = CommandLauncher([PY, "-c", code])
    first = launcher.launch(job)
    ref = json.loads(json.dumps(first.ref()))
    assert ref["pid"] == first.pid and ref["start"] == _proc_stat(first.pid)[1]
    again = launcher.reattach(job, ref)
    assert again is not None and again.poll().status == "running"
    state = finish(again)   # not its parent: the result file tells how it ended
    assert (state.status, state.reason) == ("succeeded", None)
    assert launcher.reattach(job, {"pid": "x"}) is None
    # a pid now held by another process (another start time) is not the job: never polled, never killed
    job2 = spec(tmp_path, job_id="job-000002")
    live = CommandLauncher([PY, "-c", "import time; time.sleep(30)"]).launch(job2)
    stranger = launcher.reattach(job2, {**live.ref(), "start": live.ref()["start"] + 1})
    assert stranger is not None
    state = stranger.poll()
    assert state.status == "failed" and state.reason.startswith("lost on restart")
    stranger.cancel()
    assert live.poll().status == "running"
    live.cancel()
    assert live.poll().reason == "cancelled" and not _alive(live.pid, None)


def test_the_entry_point_reports_a_job_it_cannot_run(tmp_path: Path) -> None:
    job = spec(tmp_path)
    handle = LocalLauncher().launch(job)          # the snapshot has no parquet files
    state = finish(handle, 60)
    assert (state.status, state.exit_code) == ("failed", 1)
    result = json.loads((job.output / "result.json").read_text())
    assert result["status"] == "failed" and result["exit_code"] == 1 and "train.parquet" in result["reason"]
    assert result["manifest_sha256"] is not None
    assert any("Traceback" in line for line in handle.log_tail(50))


# -------------------------------------------------------------------------------------- kubernetes


class FakeJobsApi:
    """Enough of the Kubernetes API for Jobs: create (409 on a taken name), read status, delete,
    list a Job's pods and read a pod's log. Tests move a Job through its states with ``set_status``."""

    def __init__(self, server: HTTPServer) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.namespaces = {"default", "ml"}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, dict[str, Any]]] = []
        self.status_reads = 0
        self.fail_reads = 0
        server.expect_request(re.compile(r"^/apis/batch/v1/namespaces/[^/]+/jobs$"), method="POST"
                              ).respond_with_handler(self.create)
        server.expect_request(re.compile(r"^/apis/batch/v1/namespaces/[^/]+/jobs/[^/]+/status$"), method="GET"
                              ).respond_with_handler(self.status)
        server.expect_request(re.compile(r"^/apis/batch/v1/namespaces/[^/]+/jobs/[^/]+$"), method="DELETE"
                              ).respond_with_handler(self.delete)
        server.expect_request(re.compile(r"^/api/v1/namespaces/[^/]+/pods$"), method="GET"
                              ).respond_with_handler(self.pods)
        server.expect_request(re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/log$"), method="GET"
                              ).respond_with_handler(self.log)

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    @staticmethod
    def _status(code: int, reason: str, message: str) -> Response:
        return FakeJobsApi._json({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                  "reason": reason, "code": code}, code)

    def create(self, request: Request) -> Response:
        ns = request.path.split("/")[5]
        body = json.loads(request.data)
        name = body["metadata"]["name"]
        if ns not in self.namespaces:
            return self._status(404, "NotFound", f'namespaces "{ns}" not found')
        if (ns, name) in self.jobs:
            return self._status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
        body["metadata"].update(uid=f"uid-{len(self.created)}", creationTimestamp="2024-05-01T10:00:00Z")
        body["status"] = {}
        self.jobs[(ns, name)] = body
        self.created.append(body)
        return self._json(body, 201)

    def status(self, request: Request) -> Response:
        ns, name = request.path.split("/")[5], request.path.split("/")[7]
        self.status_reads += 1
        if self.fail_reads:
            self.fail_reads -= 1
            return self._status(500, "InternalError", "etcd is having a bad day")
        if (ns, name) not in self.jobs:
            return self._status(404, "NotFound", f'jobs.batch "{name}" not found')
        return self._json(self.jobs[(ns, name)])

    def delete(self, request: Request) -> Response:
        ns, name = request.path.split("/")[5], request.path.split("/")[7]
        self.deleted.append((name, json.loads(request.data or b"{}")))
        if self.jobs.pop((ns, name), None) is None:
            return self._status(404, "NotFound", f'jobs.batch "{name}" not found')
        return self._json({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def pods(self, request: Request) -> Response:
        name = request.args.get("labelSelector", "").removeprefix("job-name=")
        items = [{"metadata": {"name": f"{name}-abcde", "creationTimestamp": "2024-05-01T10:00:01Z"}}] \
            if any(n == name for _, n in self.jobs) else []
        return self._json({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    def log(self, request: Request) -> Response:
        n = int(request.args.get("tailLines", "50"))
        lines = [f"epoch {i}/5" for i in range(1, 6)]
        return Response("\n".join(lines[-n:]) + "\n", content_type="text/plain")

    def set_status(self, name: str, status: dict[str, Any], ns: str = "ml") -> None:
        self.jobs[(ns, name)]["status"] = status


@pytest.fixture
def api(httpserver: HTTPServer) -> FakeJobsApi:
    return FakeJobsApi(httpserver)


@pytest.fixture
def api_client(httpserver: HTTPServer) -> k8s.ApiClient:
    return k8s.ApiClient(k8s.Configuration(host=httpserver.url_for("").rstrip("/")))


OPTS = KubernetesOptions(image="registry.example/driftwarden-trainer:0.1", namespace="ml", gpus=1,
                         volume_claim="driftwarden-state", state_dir="/srv/state", backoff_limit=1,
                         ttl_after_finished_s=600)


def test_job_names_are_dns_safe_bounded_and_deterministic() -> None:
    names = {job_name(m, i) for m in ("car-loan", "Car_Loan", "x" * 300) for i in ("inc-1", "INC 1", "i" * 300)}
    assert len(names) == 9
    for n in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63
    assert job_name("car-loan", "inc-1") == job_name("car-loan", "inc-1")
    assert job_name("car-loan", "inc-1").startswith("dw-retrain-car-loan-inc-1-")
    assert job_name("---", "???").startswith("dw-retrain-")


def test_the_job_manifest_is_valid_against_the_kubernetes_schema(tmp_path: Path) -> None:
    job = JobSpec("job-000009", "car-loan", Path("/srv/state/jobs/job-000009"), Path("/srv/state/snapshots/s1"),
                  "inc-42", timeout_s=5400)
    manifest = job_manifest(job, OPTS)
    kubernetes_validate.validate(manifest, "1.30", strict=True)      # raises on any schema violation
    spec_ = manifest["spec"]
    container = spec_["template"]["spec"]["containers"][0]
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    assert manifest["metadata"]["name"] == job_name("car-loan", "inc-42")
    assert (spec_["backoffLimit"], spec_["activeDeadlineSeconds"], spec_["ttlSecondsAfterFinished"]) == (1, 5400, 600)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == OPTS.image
    assert container["args"] == ["--job", "/var/lib/driftwarden/jobs/job-000009"]   # paths inside the mount
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DRIFTWARDEN_SNAPSHOT"] == "/var/lib/driftwarden/snapshots/s1"
    assert env["DRIFTWARDEN_MANIFEST"] == "/var/lib/driftwarden/snapshots/s1/manifest.json"
    assert env["DRIFTWARDEN_INCIDENT"] == "inc-42"
    assert spec_["template"]["spec"]["restartPolicy"] == "Never"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "runAsNonRoot": True,  # PSS restricted
                                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec_["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "driftwarden-state"
    cpu_only = job_manifest(job, KubernetesOptions(image="trainer:1", gpus=0, memory=None, active_deadline_s=60))
    kubernetes_validate.validate(cpu_only, "1.30", strict=True)
    assert "nvidia.com/gpu" not in cpu_only["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert cpu_only["spec"]["activeDeadlineSeconds"] == 60
    broken = json.loads(json.dumps(manifest))
    broken["spec"]["backoffLimit"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)
    for bad in ({"image": ""}, {"image": "x", "namespace": "Bad_NS"}, {"image": "x", "gpus": -1},
                {"image": "x", "image_pull_policy": "Sometimes"}):
        with pytest.raises(ValueError):
            KubernetesOptions(**bad)  # type: ignore[arg-type]


def test_kubernetes_create_poll_succeed_and_duplicate_refused(tmp_path: Path, api: FakeJobsApi,
                                                              api_client: k8s.ApiClient) -> None:
    launcher = KubernetesLauncher(OPTS, api_client)
    job = spec(tmp_path, timeout_s=900)
    handle = launcher.launch(job)
    name = job_name("car-loan", "inc-7")
    assert handle.name == name and handle.ref() == {"name": name, "namespace": "ml"}
    sent = api.created[0]
    assert sent["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert sent["spec"]["activeDeadlineSeconds"] == 900 and sent["metadata"]["namespace"] == "ml"
    assert handle.poll().status == "pending"
    api.set_status(name, {"active": 1, "startTime": "2024-05-01T10:00:05Z"})
    assert handle.poll().status == "running"
    assert handle.log_tail(2) == ["epoch 4/5", "epoch 5/5"]
    api.set_status(name, {"succeeded": 1, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]})
    assert handle.poll().status == "succeeded"
    # the same incident again: the API answers 409 and the launcher refuses clearly
    with pytest.raises(DuplicateJob, match="already exists") as e:
        launcher.launch(spec(tmp_path, job_id="job-000002"))
    assert e.value.name == name and len(api.created) == 1
    other = launcher.launch(spec(tmp_path, job_id="job-000003", incident="inc-8"))
    assert other.name != name


def test_kubernetes_failure_vanished_job_cancel_and_api_errors(tmp_path: Path, api: FakeJobsApi,
                                                                api_client: k8s.ApiClient) -> None:
    launcher = KubernetesLauncher(OPTS, api_client)
    handle = launcher.launch(spec(tmp_path))
    api.set_status(handle.name, {"failed": 2, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]})
    state = handle.poll()
    assert state.status == "failed"
    assert state.reason == "BackoffLimitExceeded: Job has reached the specified backoff limit"

    gone = launcher.launch(spec(tmp_path, job_id="job-000002", incident="inc-8"))
    api.jobs.pop(("ml", gone.name))          # deleted behind our back, or its TTL ran out
    assert gone.poll().status == "failed" and "not found" in (gone.poll().reason or "")

    live = launcher.launch(spec(tmp_path, job_id="job-000003", incident="inc-9"))
    api.fail_reads = 1
    with pytest.raises(k8s.ApiException):
        live.poll()                            # a transient API error is the manager's to retry
    live.cancel()
    assert api.deleted[-1] == (live.name, {"propagationPolicy": "Background"})
    assert live.poll().status == "failed" and live.log_tail() == []

    with pytest.raises(LaunchError, match="HTTP 404"):
        KubernetesLauncher(KubernetesOptions(image="x", namespace="nowhere"), api_client).launch(
            spec(tmp_path, job_id="job-000004"))


def test_the_manager_refuses_a_duplicate_and_reattaches_a_kubernetes_job(tmp_path: Path, api: FakeJobsApi,
                                                                          api_client: k8s.ApiClient) -> None:
    launchers = {"kubernetes": KubernetesLauncher(OPTS, api_client)}
    snap = tmp_path / "snap"
    snap.mkdir()
    m = JobManager(tmp_path / "state", launchers, cooldown_s=0)
    first = m.submit("car-loan", snap, incident="inc-7")
    assert first.status == "running" and first.ref == {"name": job_name("car-loan", "inc-7"), "namespace": "ml"}
    m.update()
    assert m.record(first.id).status == "pending"          # no pod yet
    # the agent restarts while the Job runs: the new manager finds it by name and sees it end
    m2 = JobManager(tmp_path / "state", launchers, cooldown_s=0)
    assert m2.record(first.id).reattached
    api.set_status(first.ref["name"], {"active": 1})
    m2.update()
    assert m2.record(first.id).status == "running"
    api.set_status(first.ref["name"], {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    done = m2.wait(first.id, timeout_s=5)
    assert done.status == "succeeded" and done.log_tail == [f"epoch {i}/5" for i in range(1, 6)]
    assert done.version is None          # no result.json came back (no shared volume here): nothing registered
    # the same incident once more: the API refuses, the manager records why
    dup = m2.submit("car-loan", snap, incident="inc-7")
    assert dup.status == "failed" and "DuplicateJob" in (dup.reason or "") and "already exists" in (dup.reason or "")
    assert m2.counts() == {("car-loan", "succeeded"): 1, ("car-loan", "failed"): 1}
    job = build_job(spec(tmp_path), OPTS)
    assert isinstance(job, k8s.V1Job) and job.spec.template.spec.tolerations[0].key == "nvidia.com/gpu"


# --------------------------------------------------------------------------------- from the YAML

def _model(tmp_path: Path, retrain: dict[str, Any]) -> dict[str, Any]:
    ref = tmp_path / "ref.csv"
    ref.write_text("x,y\n1,0\n2,1\n")
    return {"state_dir": str(tmp_path / "state"),
            "models": {"car-loan": {"task": "binary_classification", "reference": str(ref), "target": "y",
                                    "retrain": retrain}}}


def test_a_yaml_kubernetes_block_builds_the_launcher_the_controller_uses(tmp_path: Path, api: FakeJobsApi,
                                                                         httpserver: HTTPServer) -> None:
    from agent.config import ConfigError, build_config
    from agent.retrain.controller import launcher_name, launchers_for
    from agent.retrain.kubernetes_launcher import own_namespace

    cfg = build_config(_model(tmp_path, {"enabled": True, "launcher": "kubernetes", "kubernetes": {
        "image": "registry.example/retrain:2-cuda", "namespace": "ml", "gpus": 2, "volume_claim": "dw-state",
        "service_account": "driftwarden-retrain", "api_server": httpserver.url_for("/")}}))
    m = cfg.models["car-loan"]
    launchers = launchers_for(cfg.models, cfg.state_dir)
    assert launcher_name("car-loan", m) == "kubernetes:car-loan" and set(launchers) == {"local", "kubernetes:car-loan"}
    handle = launchers["kubernetes:car-loan"].launch(spec(tmp_path))
    pod = api.created[0]["spec"]["template"]["spec"]
    assert handle.name == job_name("car-loan", "inc-7") and api.created[0]["metadata"]["namespace"] == "ml"
    assert pod["containers"][0]["image"] == "registry.example/retrain:2-cuda"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["serviceAccountName"] == "driftwarden-retrain"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "dw-state"

    defaults = build_config(_model(tmp_path, {"launcher": "kubernetes"})).models["car-loan"].retrain.kubernetes
    assert defaults is not None and defaults.image == "driftwarden/retrain:0.1.0-cuda" and defaults.gpus == 1
    assert defaults.namespace is None      # the agent pod's own namespace
    sa = tmp_path / "namespace"
    sa.write_text("ml-prod\n")
    assert own_namespace(sa) == "ml-prod" and own_namespace(tmp_path / "absent") == "default"
    for bad, key in (({"launcher": "kubernetes", "kubernetes": {"namespace": "Bad_NS"}}, "namespace"),
                     ({"launcher": "local", "kubernetes": {"image": "x"}}, "retrain.launcher is 'local'"),
                     ({"launcher": "command"}, "needs a command"),
                     ({"launcher": "kubernetes", "kubernetes": {"gpu": 1}}, "gpu")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            build_config(_model(tmp_path, bad))
