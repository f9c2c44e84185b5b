"""The job manager: launches retraining jobs, watches them, registers what they trained.

``submit(model, snapshot, ...)`` refuses (:class:`JobRefused`) a second job for a model while one is
pending or running, and a new one within ``cooldown_s`` of the model's last job ending (``force``
skips the cool-down, never the one-job rule). Everything after the refusal checks is recorded, never
raised: a launcher that cannot start the job, a job that fails, a hung one (killed at its timeout,
or cancelled when it gives no end ``deadline_grace_s`` past it), a result that cannot be read, a
registry write that fails: each leaves the job ``failed`` with its reason.

``update()`` polls every active job once (``start()`` runs it every ``poll_interval_s`` on a daemon
thread; ``wait`` drives it by hand). When a job succeeds, its ``output/result.json`` is read back;
a model in ``output/<model_dir>`` is registered as a new version, promoted only when the result says
``promote`` (the trainer's champion-vs-challenger verdict).

Records are JSON, one file per job (``state_dir/jobs/<id>.json``, replaced atomically at each
change), beside each job's folder (``state_dir/jobs/<id>/``: ``spec.json``, ``job.log``,
``output/``). A new manager on the same state dir reads them back: a job found pending or running is
reattached when its launcher can find it again (a local or command process by pid and start time,
a Kubernetes Job by name) and polled as before, else recorded failed "lost on restart". Records are
kept (jobs are few: one per model per cool-down), so :meth:`counts` (by model and status, for
``driftwarden_retrain_jobs_total{model,status}``) never goes down for a finished status.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.retrain.launchers import TERMINAL, Handle, JobSpec, JobState, Launcher, tail_lines
from agent.retrain.registry import ModelRegistry, atomic_write_json, json_safe, valid_name

__all__ = ["JobManager", "JobRecord", "JobRefused"]

log = logging.getLogger(__name__)


class JobRefused(Exception):
    """A launch refused by policy: a job of the model is active, or the cool-down is not over."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class JobRecord:
    """One job, as persisted and as ``GET /jobs/{id}`` shows it."""

    id: str
    model: str
    launcher: str
    snapshot: str
    directory: str
    status: str = "pending"
    incident: str | None = None
    reason: str | None = None
    timeout_s: float = 3600.0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    ref: dict[str, Any] | None = None         # the launcher's handle, to find the job again after a restart
    train: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None                 # the trainer's: promote / reject / failed
    failed_gate: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    manifest_sha256: str | None = None
    version: str | None = None                 # the registered version, if any
    promoted: bool = False
    log_tail: list[str] = field(default_factory=list)   # kept when the job ends
    reattached: bool = False

    @property
    def active(self) -> bool:
        return self.status not in TERMINAL

    def spec(self) -> JobSpec:
        return JobSpec(self.id, self.model, Path(self.directory), Path(self.snapshot), self.incident,
                       self.timeout_s, self.train)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("id", "model", "incident", "launcher", "status", "reason", "created",
                                              "started", "finished", "verdict", "version", "promoted")}


class JobManager:
    """Retraining jobs of every model; thread-safe. ``launchers`` maps a name (``local``,
    ``command``, ``kubernetes``) to a launcher; ``default_launcher`` is used when ``submit`` names none."""

    def __init__(self, state_dir: str | Path, launchers: Mapping[str, Launcher],
                 registry: ModelRegistry | None = None, *, default_launcher: str | None = None,
                 cooldown_s: float = 3600.0, timeout_s: float = 3600.0, poll_interval_s: float = 2.0,
                 deadline_grace_s: float = 60.0, max_poll_errors: int = 10, log_lines: int = 50,
                 clock: Callable[[], float] = time.time) -> None:
        if not launchers:
            raise ValueError("launchers is empty: give at least one")
        for name, value in (("cooldown_s", cooldown_s), ("deadline_grace_s", deadline_grace_s)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        for name, value in (("timeout_s", timeout_s), ("poll_interval_s", poll_interval_s),
                            ("max_poll_errors", max_poll_errors), ("log_lines", log_lines)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if default_launcher is not None and default_launcher not in launchers:
            raise ValueError(f"default_launcher {default_launcher!r} is not one of {sorted(launchers)}")
        self.root = Path(state_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.launchers = dict(launchers)
        self.registry = registry if registry is not None else ModelRegistry(state_dir)
        self.default_launcher = default_launcher or next(iter(self.launchers))
        self.cooldown_s = cooldown_s
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.deadline_grace_s = deadline_grace_s
        self.max_poll_errors = max_poll_errors
        self.log_lines = log_lines
        self._clock = clock
        self._lock = threading.RLock()
        self._updating = threading.Lock()
        self._records: dict[str, JobRecord] = {}
        self._handles: dict[str, Handle] = {}
        self._poll_errors: dict[str, int] = {}
        self._seq = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._recover()

    # -- persistence and restart ---------------------------------------------------------
    def _save(self, rec: JobRecord) -> None:
        atomic_write_json(self.root / f"{rec.id}.json", rec.to_dict())

    def _recover(self) -> None:
        for path in sorted(self.root.glob("job-*.json")):
            try:
                rec = JobRecord.from_dict(json.loads(path.read_text()))
            except (ValueError, TypeError) as e:
                log.error("job record %s is unreadable, skipped: %s", path, e)
                continue
            self._records[rec.id] = rec
            try:
                self._seq = max(self._seq, int(rec.id.rsplit("-", 1)[1]))
            except (IndexError, ValueError):
                pass
        for rec in self._records.values():
            if rec.active:
                self._reattach(rec)

    def _reattach(self, rec: JobRecord) -> None:
        launcher = self.launchers.get(rec.launcher)
        if launcher is None:
            self._fail(rec, f"lost on restart: launcher {rec.launcher!r} is no longer configured")
            return
        try:
            handle = launcher.reattach(rec.spec(), rec.ref or {})
        except Exception as e:
            handle = None
            why = f"{type(e).__name__}: {e}"
        else:
            why = (f"the {rec.launcher} launcher cannot find it again" if rec.ref
                   else "it was being launched when the agent stopped")
        if handle is None:
            self._fail(rec, f"lost on restart: {why}")
            return
        rec.reattached = True
        self._handles[rec.id] = handle
        self._save(rec)
        log.info("job %s (%s) reattached after a restart", rec.id, rec.model)

    def _fail(self, rec: JobRecord, reason: str, exit_code: int | None = None) -> None:
        rec.status, rec.reason, rec.finished = "failed", reason, self._clock()
        if exit_code is not None:
            rec.exit_code = exit_code
        if not rec.log_tail:
            rec.log_tail = tail_lines(Path(rec.directory) / "job.log", self.log_lines)
        self._handles.pop(rec.id, None)
        self._save(rec)
        log.warning("job %s (%s) failed: %s", rec.id, rec.model, reason)

    # -- launching -----------------------------------------------------------------------
    def _check(self, model: str, force: bool) -> None:
        mine = [r for r in self._records.values() if r.model == model]
        active = [r for r in mine if r.active]
        if active:
            raise JobRefused(f"model {model!r} already has job {active[0].id} {active[0].status}: one job per model")
        if force or not self.cooldown_s:
            return
        ends = [r.finished if r.finished is not None else r.created for r in mine]
        if ends:
            left = max(ends) + self.cooldown_s - self._clock()
            if left > 0:
                raise JobRefused(f"model {model!r} is cooling down: its last job ended {self.cooldown_s - left:.0f} s "
                                 f"ago, the next may start in {left:.0f} s (cooldown_s {self.cooldown_s:g})", left)

    def submit(self, model: str, snapshot: str | Path, *, incident: str | None = None, launcher: str | None = None,
               train: Mapping[str, Any] | None = None, timeout_s: float | None = None,
               force: bool = False) -> JobRecord:
        """Launch a job training ``model`` on the dataset snapshot folder ``snapshot``; returns its
        record (``running``, or ``failed`` when the launcher could not start it). Raises
        :class:`JobRefused` (one job per model; the cool-down, unless ``force``), or ValueError for
        an unknown launcher or a model name unfit for a path."""
        kind = launcher or self.default_launcher
        if kind not in self.launchers:
            raise ValueError(f"launcher {kind!r} is not one of {sorted(self.launchers)}")
        if not valid_name(model):
            raise ValueError(f"model name {model!r} is not one path component of letters, digits, '.', '_', '-'")
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        if not timeout > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        with self._lock:
            self._check(model, force)
            self._seq += 1
            job_id = f"job-{self._seq:06d}"
            rec = JobRecord(job_id, model, kind, str(Path(snapshot)), str(self.root / job_id), incident=incident,
                            timeout_s=timeout, created=self._clock(), train=json_safe(dict(train or {})))
            self._records[job_id] = rec
            self._save(rec)   # pending: the model is taken from here on
        try:
            handle = self.launchers[kind].launch(rec.spec())
        except Exception as e:
            with self._lock:
                self._fail(rec, f"launch failed: {type(e).__name__}: {e}")
                return self._copy(rec)
        with self._lock:
            rec.status, rec.started, rec.ref = "running", self._clock(), handle.ref()
            self._handles[job_id] = handle
            self._save(rec)
            log.info("job %s launched for %s (%s, incident %s)", job_id, model, kind, incident)
            return self._copy(rec)

    def cancel(self, job_id: str) -> JobRecord:
        """Stop an active job (recorded failed "cancelled"); KeyError for an unknown id."""
        with self._lock:
            rec = self._records[job_id]
            handle = self._handles.get(job_id)
        if rec.active:
            if handle is not None:
                try:
                    handle.cancel()
                except Exception as e:
                    log.warning("cancelling job %s: %s", job_id, e)
            with self._lock:
                if rec.active:
                    self._tail(rec, handle)
                    self._fail(rec, "cancelled")
        return self._copy(rec)

    # -- watching ------------------------------------------------------------------------
    def update(self) -> list[str]:
        """Poll every active job once; finish those that ended. Returns the ids that ended."""
        ended = []
        with self._updating:
            with self._lock:
                active = [(r, self._handles.get(r.id)) for r in self._records.values() if r.active]
            for rec, handle in active:
                if handle is None:
                    continue
                if self._poll(rec, handle):
                    ended.append(rec.id)
        return ended

    def _poll(self, rec: JobRecord, handle: Handle) -> bool:
        try:
            state = handle.poll()
        except Exception as e:
            n = self._poll_errors.get(rec.id, 0) + 1
            self._poll_errors[rec.id] = n
            if n < self.max_poll_errors:
                log.warning("polling job %s failed (%d/%d): %s", rec.id, n, self.max_poll_errors, e)
                return False
            self._cancel_quietly(handle)
            with self._lock:
                self._tail(rec, handle)
                self._fail(rec, f"status unavailable after {n} polls: {type(e).__name__}: {e}")
            return True
        self._poll_errors.pop(rec.id, None)
        if not state.done:
            started = rec.started if rec.started is not None else rec.created
            if self._clock() > started + rec.timeout_s + self.deadline_grace_s:
                self._cancel_quietly(handle)
                with self._lock:
                    self._tail(rec, handle)
                    self._fail(rec, f"hung: no end {self.deadline_grace_s:g} s past its timeout of "
                                    f"{rec.timeout_s:g} s; cancelled")
                return True
            if state.status != rec.status:
                with self._lock:
                    rec.status, rec.reason = state.status, state.reason
                    self._save(rec)
            return False
        self._finish(rec, handle, state)
        return True

    @staticmethod
    def _cancel_quietly(handle: Handle) -> None:
        try:
            handle.cancel()
        except Exception as e:
            log.warning("cancelling a job: %s", e)

    def _tail(self, rec: JobRecord, handle: Handle | None) -> None:
        try:
            lines = handle.log_tail(self.log_lines) if handle is not None else []
        except Exception:
            lines = []
        rec.log_tail = lines or tail_lines(Path(rec.directory) / "job.log", self.log_lines)

    def _finish(self, rec: JobRecord, handle: Handle, state: JobState) -> None:
        """Read the result back, register (and maybe promote) the model; never raises."""
        with self._lock:
            self._tail(rec, handle)
            rec.exit_code = state.exit_code
        try:
            result = self._result(rec)
            with self._lock:
                self._absorb(rec, result)
            if state.status != "succeeded":
                extra = result.get("reason") if result else None
                reason = state.reason or "failed"
                with self._lock:
                    self._fail(rec, f"{reason}: {extra}" if extra and extra not in reason else reason)
                return
            if result and result.get("status") == "failed":
                with self._lock:
                    self._fail(rec, str(result.get("reason") or "the trainer reported failure"))
                return
            self._register(rec, result)
        except Exception as e:
            log.exception("finishing job %s", rec.id)
            with self._lock:
                self._fail(rec, f"finishing the job: {type(e).__name__}: {e}")
            return
        with self._lock:
            rec.status, rec.reason, rec.finished = "succeeded", None, self._clock()
            self._handles.pop(rec.id, None)
            self._save(rec)
            log.info("job %s (%s) succeeded: %s%s", rec.id, rec.model, rec.verdict or "done",
                     f", version {rec.version}" + (" promoted" if rec.promoted else "") if rec.version else "")

    def _result(self, rec: JobRecord) -> dict[str, Any] | None:
        path = Path(rec.directory) / "output" / "result.json"
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"{path} is not JSON: {e}") from None
        if not isinstance(value, dict):
            raise ValueError(f"{path} holds {type(value).__name__}, not an object")
        return json_safe(value)

    @staticmethod
    def _absorb(rec: JobRecord, result: Mapping[str, Any] | None) -> None:
        if not result:
            return
        if isinstance(result.get("metrics"), Mapping):
            rec.metrics = dict(result["metrics"])
        if isinstance(result.get("gates"), list):
            rec.gates = [g for g in result["gates"] if isinstance(g, Mapping)]
        for key in ("verdict", "failed_gate", "manifest_sha256"):
            if isinstance(result.get(key), str):
                setattr(rec, key, result[key])

    def _register(self, rec: JobRecord, result: Mapping[str, Any] | None) -> None:
        if not result or not result.get("model_dir"):
            return
        output = (Path(rec.directory) / "output").resolve()
        model_dir = (output / str(result["model_dir"])).resolve()
        if not model_dir.is_relative_to(output):
            raise ValueError(f"model_dir {result['model_dir']!r} is outside the job's output folder")
        report_path = output / str(result.get("report") or "report.json")
        report = json.loads(report_path.read_text()) if report_path.is_file() else dict(result)
        v = self.registry.register(rec.model, model_dir, report=report, metrics=rec.metrics or None,
                                   manifest_sha256=rec.manifest_sha256, incident=rec.incident, job=rec.id,
                                   verdict=rec.verdict)
        with self._lock:
            rec.version = v.version
            self._save(rec)
        if result.get("promote") is True:
            self.registry.promote(rec.model, v.version)
            with self._lock:
                rec.promoted = True

    def wait(self, job_id: str, timeout_s: float = 600.0, interval_s: float = 0.2) -> JobRecord:
        """Drive :meth:`update` until the job ends (or ``timeout_s`` passes); its record."""
        end = time.monotonic() + timeout_s
        while True:
            self.update()
            rec = self.record(job_id)
            if not rec.active or time.monotonic() > end:
                return rec
            time.sleep(interval_s)

    def start(self) -> None:
        """Poll on a daemon thread every ``poll_interval_s`` until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()

        def loop() -> None:
            while not self._stopping.wait(self.poll_interval_s):
                try:
                    self.update()
                except Exception:   # the watcher never dies of one bad poll
                    log.exception("job watcher")

        self._thread = threading.Thread(target=loop, name="retrain-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling; jobs still running go on, and are reattached by the next manager."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    # -- reads ---------------------------------------------------------------------------
    @staticmethod
    def _copy(rec: JobRecord) -> JobRecord:
        return JobRecord.from_dict(rec.to_dict())

    def records(self) -> list[JobRecord]:
        with self._lock:
            return [self._copy(r) for r in self._records.values()]

    def record(self, job_id: str) -> JobRecord:
        """A copy of one job's record; KeyError for an unknown id."""
        with self._lock:
            return self._copy(self._records[job_id])

    def counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (model, current status: pending, running, succeeded, failed). The exporter turns
        them into the contract's monotonic ``started/succeeded/failed/rejected`` counts
        (:func:`agent.outputs.metrics.job_counts`)."""
        with self._lock:
            return dict(Counter((r.model, r.status) for r in self._records.values()))

    def list(self) -> tuple[int, Any]:
        """``GET /jobs``: every job's summary, newest first."""
        with self._lock:
            return 200, [r.summary() for r in sorted(self._records.values(), key=lambda r: r.id, reverse=True)]

    def get(self, rest: str) -> tuple[int, Any]:
        """``GET /jobs`` (``rest`` empty) or ``GET /jobs/{id}``: status, reason, gates, metrics, log tail."""
        job_id = rest.strip("/")
        if not job_id:
            return self.list()
        with self._lock:
            rec = self._records.get(job_id)
            handle = self._handles.get(job_id)
            if rec is None:
                return 404, {"error": f"no job {job_id!r}"}
            body = rec.to_dict()
        if rec.active:
            try:
                body["log_tail"] = handle.log_tail(self.log_lines) if handle is not None else []
            except Exception:
                body["log_tail"] = []
        body.pop("ref", None)
        return 200, body
