"""Launchers: where a retraining job runs. One interface, three kinds chosen by name in the config.

``launcher.launch(job) -> Handle``; ``handle.poll() -> JobState`` (status ``pending``, ``running``,
``succeeded`` or ``failed``, with a reason), ``handle.cancel()``, ``handle.log_tail(n)``, and
``handle.ref()``, the JSON a job record keeps so that ``launcher.reattach(job, ref)`` finds the job
again after the agent restarts (None when it cannot).

- ``local`` (:class:`LocalLauncher`): ``python -m agent.retrain.run_job --job DIR``, the trainer of
  this package, in a subprocess of its own session; stdout and stderr go straight to the job's log
  file (``DIR/job.log``) as they are written.
- ``command`` (:class:`CommandLauncher`): the user's own trainer, any argument list; ``{snapshot}``,
  ``{manifest}``, ``{output}``, ``{job}`` in it are replaced by the paths (other braces are kept),
  and the environment carries ``DRIFTWARDEN_SNAPSHOT``, ``DRIFTWARDEN_MANIFEST``,
  ``DRIFTWARDEN_OUTPUT`` (plus ``DRIFTWARDEN_JOB_ID``, ``DRIFTWARDEN_MODEL``,
  ``DRIFTWARDEN_INCIDENT``). Exit code 0 succeeds; an optional ``OUTPUT/result.json`` (``status``,
  ``metrics``, ``gates``, ``model_dir``: a folder :meth:`TrainedModel.save` wrote, ``promote``) is
  read back by the job manager.
- ``kubernetes`` (:class:`agent.retrain.kubernetes_launcher.KubernetesLauncher`): a ``batch/v1``
  Job through the official client, named after the incident so that a second launch for it is
  refused (:class:`DuplicateJob`); its status is polled from the Job's conditions.

A process job is killed (its whole process group: SIGTERM, then SIGKILL) and reported failed when
it outlives its ``timeout_s``; the deadline is checked on every poll, also after a reattach.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from agent.retrain.traffic import pid_alive

__all__ = ["Status", "STATUSES", "TERMINAL", "JobSpec", "JobState", "Handle", "Launcher", "LaunchError",
           "DuplicateJob", "CommandLauncher", "LocalLauncher", "tail_lines", "format_args"]

Status = Literal["pending", "running", "succeeded", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "running", "succeeded", "failed")
TERMINAL = frozenset({"succeeded", "failed"})
_KILL_GRACE_S = 2.0
_TAIL_BYTES = 256 * 1024


class LaunchError(RuntimeError):
    """The launcher could not start the job."""


class DuplicateJob(LaunchError):
    """A job of that name (the same model and incident) already exists."""

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(f"a Job named {name!r} already exists in namespace {namespace!r}: "
                         f"this incident's retraining was launched before")
        self.name = name
        self.namespace = namespace


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a launcher is given. ``directory`` is the job's own folder: ``spec.json`` (this, as JSON,
    with ``train``: the schema and trainer settings that ``run_job`` reads), ``job.log``, ``output/``."""

    id: str
    model: str
    directory: Path
    snapshot: Path
    incident: str | None = None
    timeout_s: float = 3600.0
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        object.__setattr__(self, "snapshot", Path(self.snapshot))
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    @property
    def log(self) -> Path:
        return self.directory / "job.log"

    @property
    def manifest(self) -> Path:
        return self.snapshot / "manifest.json"

    @property
    def output(self) -> Path:
        return self.directory / "output"

    @property
    def spec_file(self) -> Path:
        return self.directory / "spec.json"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "incident": self.incident, "directory": str(self.directory),
                "snapshot": str(self.snapshot), "manifest": str(self.manifest), "output": str(self.output),
                "timeout_s": self.timeout_s, "train": dict(self.train)}

    def prepare(self) -> None:
        """Create the job folder and its output folder, and write ``spec.json``."""
        self.output.mkdir(parents=True, exist_ok=True)
        tmp = self.spec_file.with_name("spec.json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, self.spec_file)

    def placeholders(self) -> dict[str, str]:
        return {"job": str(self.directory), "snapshot": str(self.snapshot), "manifest": str(self.manifest),
                "output": str(self.output), "id": self.id, "model": self.model, "incident": self.incident or ""}


@dataclass(frozen=True, slots=True)
class JobState:
    """One poll's answer."""

    status: Status
    reason: str | None = None       # why it failed (or what it waits for)
    exit_code: int | None = None    # a process's exit status (negative: killed by that signal)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class Handle(Protocol):
    def poll(self) -> JobState: ...
    def cancel(self) -> None: ...
    def log_tail(self, n: int = 50) -> list[str]: ...
    def ref(self) -> dict[str, Any]: ...


class Launcher(Protocol):
    kind: ClassVar[str]

    def launch(self, job: JobSpec) -> Handle: ...
    def reattach(self, job: JobSpec, ref: Mapping[str, Any]) -> Handle | None: ...


def tail_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of a text file (read from its end; [] when absent)."""
    if n <= 0:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return [line for line in text.split("\n") if line.strip()][-n:]


_PLACEHOLDER = re.compile(r"\{(job|snapshot|manifest|output|id|model|incident)\}")


def format_args(arg: str, values: Mapping[str, str]) -> str:
    """``arg`` with the known placeholders replaced; any other brace is left as it is (code, JSON)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], arg)


# ---------------------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from /proc, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[19])


def _alive(pid: int, start: int | None) -> bool:
    if Path("/proc").is_dir() and Path("/proc/self/stat").exists():
        st = _proc_stat(pid)
        return st is not None and st[0] not in ("Z", "X") and (start is None or st[1] == start)
    return pid_alive(pid)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)   # the job runs in a session (and process group) of its own
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


class _ProcessHandle:
    """A job process: the launcher's own child (``popen``), or one found again by pid after a restart."""

    def __init__(self, job: JobSpec, pid: int, start: int | None, started_at: float, deadline: float,
                 popen: subprocess.Popen[bytes] | None = None) -> None:
        self.job = job
        self.pid = pid
        self.start = start
        self.started_at = started_at
        self.deadline = deadline
        self._popen = popen
        self._final: JobState | None = None

    def ref(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "started_at": self.started_at, "deadline": self.deadline}

    def _kill(self) -> None:
        _signal_group(self.pid, signal.SIGTERM)
        end = time.monotonic() + _KILL_GRACE_S
        while time.monotonic() < end and self._running():
            time.sleep(0.05)
        _signal_group(self.pid, signal.SIGKILL)
        if self._popen is not None:
            try:
                self._popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return _alive(self.pid, self.start)

    def poll(self) -> JobState:
        if self._final is not None:
            return self._final
        if self._running():
            if time.time() > self.deadline:
                self._kill()
                self._final = JobState("failed", f"timed out after {self.job.timeout_s:g} s: killed")
                return self._final
            return JobState("running")
        if self._popen is not None:
            code = self._popen.returncode
            self._final = JobState("succeeded", None, 0) if code == 0 else JobState("failed", _exit_reason(code), code)
        else:
            self._final = self._outcome_from_result()
        return self._final

    def _outcome_from_result(self) -> JobState:
        """A process that ended while no one was its parent: its exit status is gone, so the
        result file decides (``status`` or ``exit_code`` in ``output/result.json``)."""
        try:
            result = json.loads((self.job.output / "result.json").read_text())
        except (FileNotFoundError, ValueError):
            result = None
        if isinstance(result, dict):
            code = result.get("exit_code")
            status = result.get("status")
            if status in TERMINAL or isinstance(code, int):
                ok = status == "succeeded" if status in TERMINAL else code == 0
                code = code if isinstance(code, int) else None
                return JobState("succeeded", None, code) if ok else JobState(
                    "failed", result.get("reason") or (_exit_reason(code) if code is not None else "failed"), code)
        return JobState("failed", "lost on restart: the process ended while the agent was down "
                                  "and left no result.json (exit status unknown)")

    def cancel(self) -> None:
        if self._final is None and self._running():
            self._kill()
            self._final = JobState("failed", "cancelled")

    def log_tail(self, n: int = 50) -> list[str]:
        return tail_lines(self.job.log, n)


class CommandLauncher:
    """Run ``argv`` (placeholders ``{snapshot}``, ``{manifest}``, ``{output}``, ``{job}``, ``{id}``,
    ``{model}``, ``{incident}``) in the job folder (or ``cwd``), with ``env`` added to the
    agent's environment and the ``DRIFTWARDEN_*`` variables set."""

    kind: ClassVar[str] = "command"

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError(f"argv must be a non-empty list of non-empty strings, got {argv!r}")
        self.argv = tuple(argv)
        self.env = dict(env or {})
        self.cwd = None if cwd is None else Path(cwd)

    def _environment(self, job: JobSpec) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.update(DRIFTWARDEN_SNAPSHOT=str(job.snapshot), DRIFTWARDEN_MANIFEST=str(job.manifest),
                   DRIFTWARDEN_OUTPUT=str(job.output), DRIFTWARDEN_JOB_ID=job.id, DRIFTWARDEN_MODEL=job.model,
                   DRIFTWARDEN_INCIDENT=job.incident or "", DRIFTWARDEN_JOB_DIR=str(job.directory),
                   PYTHONUNBUFFERED="1")
        return env

    def command(self, job: JobSpec) -> list[str]:
        values = job.placeholders()
        return [format_args(a, values) for a in self.argv]

    def launch(self, job: JobSpec) -> _ProcessHandle:
        job.prepare()
        argv = self.command(job)
        with open(job.log, "ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.cwd or job.directory, env=self._environment(job),
                                         start_new_session=True)
            except OSError as e:
                raise LaunchError(f"cannot start {argv[0]!r}: {e}") from e
        started = time.time()
        st = _proc_stat(popen.pid)
        return _ProcessHandle(job, popen.pid, None if st is None else st[1], started, started + job.timeout_s, popen)

    def reattach(self, job: JobSpec, ref: Mapping[str, Any]) -> _ProcessHandle | None:
        try:
            pid, start = int(ref["pid"]), ref.get("start")
            started = float(ref["started_at"])
            deadline = float(ref.get("deadline", started + job.timeout_s))
        except (KeyError, TypeError, ValueError):
            return None
        return _ProcessHandle(job, pid, None if start is None else int(start), started, deadline)


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]


class LocalLauncher(CommandLauncher):
    """This package's trainer in a subprocess: ``python -m agent.retrain.run_job --job DIR``."""

    kind: ClassVar[str] = "local"

    def __init__(self, python: str | None = None, env: Mapping[str, str] | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        root = str(_project_root())
        path = os.environ.get("PYTHONPATH")
        super().__init__([python or sys.executable, "-m", "agent.retrain.run_job", "--job", "{job}", *extra_args],
                         env={"PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}", **(env or {})})
