"""The ``kubernetes`` launcher: a retraining job as a ``batch/v1`` Job, through the official client.

:func:`build_job` shapes the Job: the image, ``nvidia.com/gpu`` in the container's limits (and a
toleration for the GPU taint), ``backoffLimit``, ``activeDeadlineSeconds`` (the job's timeout unless
set), ``ttlSecondsAfterFinished``, ``restartPolicy: Never``, the ``DRIFTWARDEN_*`` paths in the
environment (translated into the mount of ``volume_claim``, the PVC holding the agent's state dir,
so that the result and the model come back). Its name comes from the model and the incident
(:func:`job_name`: DNS-1123, at most 63 characters, deterministic), so a second launch for the same
incident gets 409 Conflict from the API, raised as :class:`DuplicateJob`. The handle polls the
Job's status (``Complete`` / ``Failed`` conditions; a Job gone is failed), cancels with a
background-propagated delete, and reads the newest pod's log tail. The client is imported on first
use: it is needed only where this launcher is configured.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agent.retrain.launchers import DuplicateJob, JobSpec, JobState, LaunchError, format_args

__all__ = ["KubernetesOptions", "KubernetesLauncher", "job_name", "build_job", "job_manifest", "launcher_from_config", "own_namespace"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63


def _slug(text: str, limit: int) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].strip("-")


def job_name(model: str, key: str, prefix: str = "dw-retrain") -> str:
    """A DNS-1123 label (at most 63 characters) naming the Job of ``model`` for ``key`` (the incident
    id, or the job id for a launch by hand): readable slugs plus a hash of both, so distinct pairs
    never share a name and the same pair always gets the same one.

    >>> job_name("car-loan", "inc-000042")
    'dw-retrain-car-loan-inc-000042-c2f7732d'
    >>> len(job_name("M" * 200, "I" * 200)) <= 63
    True
    """
    digest = hashlib.sha256(f"{model}\0{key}".encode()).hexdigest()[:8]
    head = _slug(prefix, 16) or "dw"
    room = MAX_NAME - len(head) - len(digest) - 3
    m = _slug(model, max(1, room // 2))
    k = _slug(key, max(1, room - len(m)))
    name = "-".join(p for p in (head, m, k, digest) if p)
    assert _DNS_LABEL.match(name) and len(name) <= MAX_NAME, name
    return name


@dataclass(frozen=True, slots=True)
class KubernetesOptions:
    """The Job's shape. ``args`` take the same placeholders as a command launcher's; paths under
    ``state_dir`` are given to the container under ``mount_path``, where ``volume_claim`` (a PVC
    holding the agent's state dir) is mounted, so the result and the model come back to the agent."""

    image: str
    namespace: str = "default"
    command: tuple[str, ...] = ("python", "-m", "agent.retrain.run_job")
    args: tuple[str, ...] = ("--job", "{job}")
    gpus: int = 1
    cpu: str | None = "2"
    memory: str | None = "8Gi"
    backoff_limit: int = 0
    active_deadline_s: int | None = None        # None: the job's timeout_s
    ttl_after_finished_s: int = 86_400
    volume_claim: str | None = None
    mount_path: str = "/var/lib/driftwarden"
    state_dir: str | None = None
    service_account: str | None = None
    image_pull_policy: str = "IfNotPresent"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str = "dw-retrain"

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "args", tuple(self.args))
        if not self.image:
            raise ValueError("image must be set")
        if not _DNS_LABEL.match(self.namespace):
            raise ValueError(f"namespace must be a DNS-1123 label, got {self.namespace!r}")
        for name in ("gpus", "backoff_limit", "ttl_after_finished_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.active_deadline_s is not None and self.active_deadline_s < 1:
            raise ValueError(f"active_deadline_s must be >= 1, got {self.active_deadline_s!r}")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(f"image_pull_policy must be Always, IfNotPresent or Never, got {self.image_pull_policy!r}")


def _k8s() -> Any:
    """The official client, imported on first use (an optional dependency: ``driftwarden[kubernetes]``)."""
    try:
        from kubernetes import client
    except ImportError as e:
        raise LaunchError("the kubernetes launcher needs the official client: pip install kubernetes") from e
    return client


def _container_path(opts: KubernetesOptions, path: Path) -> str:
    if opts.state_dir is not None:
        try:
            return str(Path(opts.mount_path) / Path(path).resolve().relative_to(Path(opts.state_dir).resolve()))
        except ValueError:
            pass
    return str(path)


def build_job(job: JobSpec, opts: KubernetesOptions) -> Any:
    """The ``V1Job`` for ``job`` (kubernetes client models)."""
    k8s = _k8s()

    name = job_name(job.model, job.incident or job.id, opts.name_prefix)
    paths = {k: _container_path(opts, Path(v)) if k in ("job", "snapshot", "manifest", "output") else v
             for k, v in job.placeholders().items()}
    env = {**opts.env, "DRIFTWARDEN_SNAPSHOT": paths["snapshot"], "DRIFTWARDEN_MANIFEST": paths["manifest"],
           "DRIFTWARDEN_OUTPUT": paths["output"], "DRIFTWARDEN_JOB_DIR": paths["job"], "DRIFTWARDEN_JOB_ID": job.id,
           "DRIFTWARDEN_MODEL": job.model, "DRIFTWARDEN_INCIDENT": job.incident or "", "PYTHONUNBUFFERED": "1"}
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if opts.gpus:
        limits["nvidia.com/gpu"] = str(opts.gpus)
    if opts.cpu:
        requests["cpu"] = limits["cpu"] = opts.cpu
    if opts.memory:
        requests["memory"] = limits["memory"] = opts.memory
    mounts, volumes = None, None
    if opts.volume_claim:
        mounts = [k8s.V1VolumeMount(name="state", mount_path=opts.mount_path)]
        volumes = [k8s.V1Volume(name="state", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=opts.volume_claim))]
    container = k8s.V1Container(
        name="trainer", image=opts.image, image_pull_policy=opts.image_pull_policy, command=list(opts.command),
        args=[format_args(a, paths) for a in opts.args],
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in sorted(env.items())],
        resources=k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None),
        volume_mounts=mounts,
        # what the "restricted" Pod Security Standard asks, so the Job runs in namespaces enforcing it
        security_context=k8s.V1SecurityContext(allow_privilege_escalation=False, run_as_non_root=True,
                                               capabilities=k8s.V1Capabilities(drop=["ALL"]),
                                               seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")))
    tolerations = ([k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
                   if opts.gpus else None)
    labels = {"app.kubernetes.io/name": "driftwarden", "app.kubernetes.io/component": "retrain",
              "driftwarden.io/model": _slug(job.model, 63) or "model",
              "driftwarden.io/job-id": _slug(job.id, 63) or "job"}
    annotations = {"driftwarden.io/model": job.model, "driftwarden.io/job-id": job.id,
                   "driftwarden.io/incident": job.incident or ""}
    pod = k8s.V1PodSpec(restart_policy="Never", containers=[container], volumes=volumes, tolerations=tolerations,
                        node_selector=dict(opts.node_selector) or None, service_account_name=opts.service_account)
    deadline = opts.active_deadline_s if opts.active_deadline_s is not None else max(1, int(round(job.timeout_s)))
    spec = k8s.V1JobSpec(template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
                         backoff_limit=opts.backoff_limit, active_deadline_seconds=deadline,
                         ttl_seconds_after_finished=opts.ttl_after_finished_s)
    return k8s.V1Job(api_version="batch/v1", kind="Job", spec=spec,
                     metadata=k8s.V1ObjectMeta(name=name, namespace=opts.namespace, labels=labels,
                                               annotations=annotations))


def job_manifest(job: JobSpec, opts: KubernetesOptions) -> dict[str, Any]:
    """The Job as the plain dict the API receives (camelCase keys, no nulls)."""
    return _k8s().ApiClient().sanitize_for_serialization(build_job(job, opts))


def _job_state(status: Any) -> JobState:
    if status is None:
        return JobState("pending")
    for c in status.conditions or []:
        if str(c.status) == "True" and c.type == "Failed":
            return JobState("failed", ": ".join(p for p in (c.reason, c.message) if p) or "Job failed")
        if str(c.status) == "True" and c.type == "Complete":
            return JobState("succeeded")
    if status.active:
        return JobState("running")
    return JobState("pending", "waiting for a pod to start")


class _KubernetesHandle:
    def __init__(self, launcher: KubernetesLauncher, job: JobSpec, name: str) -> None:
        self.launcher = launcher
        self.job = job
        self.name = name
        self._final: JobState | None = None

    def ref(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.launcher.options.namespace}

    def poll(self) -> JobState:
        """The Job's status from its conditions; API errors other than 404 raise (the job manager
        retries a bounded number of polls)."""
        if self._final is not None:
            return self._final
        from kubernetes.client.rest import ApiException

        try:
            job = self.launcher.batch.read_namespaced_job_status(self.name, self.launcher.options.namespace)
        except ApiException as e:
            if e.status == 404:
                self._final = JobState("failed", f"Job {self.name!r} not found (deleted, or removed by its TTL)")
                return self._final
            raise
        state = _job_state(job.status)
        if state.done:
            self._final = state
        return state

    def cancel(self) -> None:
        from kubernetes import client as k8s
        from kubernetes.client.rest import ApiException

        try:
            self.launcher.batch.delete_namespaced_job(self.name, self.launcher.options.namespace,
                                                      body=k8s.V1DeleteOptions(propagation_policy="Background"))
        except ApiException as e:
            if e.status != 404:
                raise
        if self._final is None:
            self._final = JobState("failed", "cancelled")

    def log_tail(self, n: int = 50) -> list[str]:
        """The newest pod's last ``n`` log lines ([] when there is no pod or the API refuses)."""
        try:
            pods = self.launcher.core.list_namespaced_pod(self.launcher.options.namespace,
                                                          label_selector=f"job-name={self.name}").items
            if not pods:
                return []
            pod = max(pods, key=lambda p: str(p.metadata.creation_timestamp or ""))
            text = self.launcher.core.read_namespaced_pod_log(pod.metadata.name, self.launcher.options.namespace,
                                                              tail_lines=n)
        except Exception:   # a log view must never fail the job's page
            return []
        return [line for line in str(text).splitlines() if line.strip()][-n:]


class KubernetesLauncher:
    """``batch/v1`` Jobs through the official client. ``api_client`` is a ``kubernetes.client.ApiClient``
    (None: the in-cluster configuration, else ``~/.kube/config``)."""

    kind: ClassVar[str] = "kubernetes"

    def __init__(self, options: KubernetesOptions, api_client: Any = None) -> None:
        k8s = _k8s()

        if api_client is None:
            from kubernetes import config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = k8s.ApiClient()
        self.options = options
        self.api_client = api_client
        self.batch = k8s.BatchV1Api(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def launch(self, job: JobSpec) -> _KubernetesHandle:
        from kubernetes.client.rest import ApiException

        job.prepare()
        body = build_job(job, self.options)
        try:
            self.batch.create_namespaced_job(self.options.namespace, body)
        except ApiException as e:
            if e.status == 409:
                raise DuplicateJob(body.metadata.name, self.options.namespace) from None
            raise LaunchError(f"creating Job {body.metadata.name!r}: HTTP {e.status} {e.reason}: "
                              f"{(e.body or '')[:300]}") from None
        with open(job.log, "a") as log:
            log.write(f"created Job {self.options.namespace}/{body.metadata.name} (image {self.options.image})\n")
        return _KubernetesHandle(self, job, body.metadata.name)

    def reattach(self, job: JobSpec, ref: Mapping[str, Any]) -> _KubernetesHandle | None:
        name = ref.get("name") or job_name(job.model, job.incident or job.id, self.options.name_prefix)
        return _KubernetesHandle(self, job, str(name))


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The namespace of the pod this runs in (its service account's mount), else ``default``."""
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return "default"


def launcher_from_config(cfg: Any, state_dir: str | Path) -> KubernetesLauncher:
    """The launcher a model's ``retrain.kubernetes`` block (:class:`agent.config.KubernetesLauncherConfig`)
    describes. Paths under the agent's ``state_dir`` map onto ``mount_path`` in the Job."""
    fields = cfg.model_dump()
    api_server = fields.pop("api_server")
    fields["state_dir"] = fields["state_dir"] or str(state_dir)
    fields["namespace"] = fields["namespace"] or own_namespace()
    api_client = None
    if api_server:
        k8s = _k8s()
        conf = k8s.Configuration()
        conf.host = api_server.rstrip("/")
        api_client = k8s.ApiClient(conf)
    return KubernetesLauncher(KubernetesOptions(**fields), api_client=api_client)
