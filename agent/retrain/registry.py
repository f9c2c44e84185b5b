"""The model registry: trained versions of each model under ``state_dir/models/<model>/``.

A version is a directory ``v0001``, ``v0002``, ... (numbered in order, never reused) holding what
:meth:`TrainedModel.save` writes (``weights.pt``, a state dict read back with
``torch.load(weights_only=True)``, and ``model.json``, the preprocessing and module spec) plus
``metrics.json``, ``gates.json`` (the trainer's report) and ``version.json`` (created time, incident,
job, the sha256 of the dataset manifest, the trainer's verdict).

A version is written whole into a temporary directory (``.tmp-*``, each file fsynced) and then
renamed to its number: ``rename`` of a directory is atomic, and fails when the name is taken, so a
reader sees a version completely or not at all, and two writers (threads or processes) never share
a number (the loser takes the next). Versions are immutable once named.

The promoted version is named by the pointer file ``PROMOTED`` (JSON), replaced atomically
(temporary file, fsync, ``os.replace``, fsync of the directory): a reader sees the old pointer or
the new one, never a torn one.

>>> import tempfile
>>> reg = ModelRegistry(tempfile.mkdtemp())
>>> reg.list("car-loan"), reg.promoted("car-loan")
([], None)
>>> reg.get("")
(200, [])
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # torch is imported lazily: only load() and register(TrainedModel) need it
    from agent.retrain.tabular import TrainedModel

__all__ = ["ModelRegistry", "Version", "valid_name", "atomic_write_json", "json_safe"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^v(\d{4,})$")
POINTER = "PROMOTED"
_STALE_TMP_S = 3600.0   # a temporary directory older than this was left by a crashed writer


def valid_name(name: str) -> bool:
    """A model (or job) name usable as one path component: letters, digits, ``.``, ``_``, ``-``."""
    return bool(_NAME.match(name)) and name not in (".", "..")


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None (strict JSON), tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``: a temporary file beside it, fsync, ``os.replace``, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write_synced(tmp, json.dumps(json_safe(value), indent=1, allow_nan=False).encode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class Version:
    """One registered version, as ``version.json`` and ``metrics.json`` describe it."""

    model: str
    version: str
    path: Path
    created: float
    incident: str | None
    job: str | None
    manifest_sha256: str | None
    verdict: str | None          # the trainer's: "promote", "reject", or None (a user trainer's model)
    metrics: dict[str, Any]

    @property
    def number(self) -> int:
        return int(self.version[1:])

    def to_dict(self, promoted: str | None = None) -> dict[str, Any]:
        return {"version": self.version, "created": self.created, "incident": self.incident, "job": self.job,
                "manifest_sha256": self.manifest_sha256, "verdict": self.verdict, "metrics": self.metrics,
                "promoted": self.version == promoted}


class ModelRegistry:
    """Versions of each model under ``state_dir/models``; safe against concurrent readers and writers."""

    def __init__(self, state_dir: str | Path) -> None:
        self.root = Path(state_dir) / "models"
        self.root.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------
    def _model_dir(self, model: str) -> Path:
        if not valid_name(model):
            raise ValueError(f"model name {model!r} is not one path component of letters, digits, '.', '_', '-'")
        return self.root / model

    def path(self, model: str, version: str) -> Path:
        if not _VERSION.match(version):
            raise ValueError(f"version {version!r} is not of the form v0001")
        return self._model_dir(model) / version

    # -- reads ---------------------------------------------------------------------------
    def models(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and valid_name(p.name))

    def _numbers(self, model: str) -> list[int]:
        d = self._model_dir(model)
        if not d.is_dir():
            return []
        return sorted(int(m.group(1)) for p in d.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir())

    def version(self, model: str, version: str) -> Version:
        """One version's description; LookupError when there is no such version."""
        d = self.path(model, version)
        try:
            meta = json.loads((d / "version.json").read_text())
            metrics = json.loads((d / "metrics.json").read_text())
        except FileNotFoundError:
            raise LookupError(f"model {model!r} has no version {version!r}") from None
        return Version(model, version, d, float(meta["created"]), meta.get("incident"), meta.get("job"),
                       meta.get("manifest_sha256"), meta.get("verdict"), metrics)

    def list(self, model: str) -> list[Version]:
        """Every version of ``model``, oldest first (empty for an unknown model)."""
        return [self.version(model, f"v{n:04d}") for n in self._numbers(model)]

    def promoted(self, model: str) -> str | None:
        """The promoted version's name, or None when none was promoted."""
        try:
            pointer = json.loads((self._model_dir(model) / POINTER).read_text())
        except FileNotFoundError:
            return None
        return str(pointer["version"])

    def gates(self, model: str, version: str) -> dict[str, Any]:
        """The report stored with the version (``gates.json``)."""
        try:
            return json.loads((self.path(model, version) / "gates.json").read_text())
        except FileNotFoundError:
            raise LookupError(f"model {model!r} has no version {version!r}") from None

    def load(self, model: str, version: str | None = None) -> TrainedModel:
        """The trained model of ``version`` (the promoted one when None); LookupError when there is
        none. The weights are read with ``torch.load(weights_only=True)`` (never unpickled)."""
        from agent.retrain.tabular import TrainedModel

        name = version or self.promoted(model)
        if name is None:
            raise LookupError(f"model {model!r} has no promoted version")
        d = self.path(model, name)
        if not (d / "version.json").is_file():
            raise LookupError(f"model {model!r} has no version {name!r}")
        return TrainedModel.load(d)

    # -- writes --------------------------------------------------------------------------
    def register(self, model: str, trained: TrainedModel | str | Path, *, report: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None, manifest_sha256: str | None = None,
                 incident: str | None = None, job: str | None = None, verdict: str | None = None,
                 created: float | None = None) -> Version:
        """Write a new version of ``model`` from a :class:`TrainedModel` or a directory that
        :meth:`TrainedModel.save` wrote, with its report (``gates.json``) and metrics (the report's
        when not given); returns it. Nothing is promoted here."""
        d = self._model_dir(model)
        d.mkdir(parents=True, exist_ok=True)
        self._sweep(d)
        report = dict(report or {})
        metrics = dict(metrics if metrics is not None else report.get("metrics", {}))
        verdict = verdict if verdict is not None else report.get("verdict")
        tmp = d / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            if isinstance(trained, str | Path):
                src = Path(trained)
                if not (src / "model.json").is_file() or not (src / "weights.pt").is_file():
                    raise ValueError(f"{src} holds no saved model (model.json and weights.pt)")
                for f in sorted(src.iterdir()):
                    if f.is_file():
                        shutil.copyfile(f, tmp / f.name)
            else:
                trained.save(tmp)
            for f in tmp.iterdir():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
            meta = {"model": model, "created": time.time() if created is None else created, "incident": incident,
                    "job": job, "manifest_sha256": manifest_sha256, "verdict": verdict}
            for name, value in (("metrics.json", metrics), ("gates.json", report)):
                _write_synced(tmp / name, json.dumps(json_safe(value), indent=1, allow_nan=False).encode())
            _fsync_dir(tmp)
            number = (self._numbers(model) or [0])[-1] + 1
            while True:
                target = d / f"v{number:04d}"
                meta["version"] = target.name
                _write_synced(tmp / "version.json", json.dumps(json_safe(meta), indent=1, allow_nan=False).encode())
                try:
                    os.rename(tmp, target)   # atomic; fails when a concurrent writer took the number
                    break
                except OSError:
                    if not target.exists():
                        raise
                    number = max(number + 1, (self._numbers(model) or [0])[-1] + 1)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(d)
        return self.version(model, target.name)

    def promote(self, model: str, version: str) -> None:
        """Point ``PROMOTED`` at ``version`` (which must exist), atomically."""
        current = self.promoted(model)
        self.version(model, version)   # LookupError when absent
        atomic_write_json(self._model_dir(model) / POINTER,
                          {"version": version, "promoted_at": time.time(), "previous": current})

    def _sweep(self, d: Path) -> None:
        """Remove temporary directories left by crashed writers (old enough not to be in use)."""
        now = time.time()
        for p in d.glob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)
            except FileNotFoundError:
                pass

    # -- HTTP ----------------------------------------------------------------------------
    def get(self, rest: str) -> tuple[int, Any]:
        """``GET /models`` (``rest`` empty): each model with its promoted and latest version;
        ``GET /models/{model}``: its versions with metrics and the promoted one;
        ``GET /models/{model}/{version}``: one version with its whole report."""
        parts = [p for p in rest.split("/") if p]
        try:
            if not parts:
                out = []
                for m in self.models():
                    nums = self._numbers(m)
                    out.append({"model": m, "promoted": self.promoted(m), "versions": len(nums),
                                "latest": f"v{nums[-1]:04d}" if nums else None})
                return 200, out
            model = parts[0]
            if not valid_name(model) or not (self.root / model).is_dir():
                return 404, {"error": f"no model {model!r}"}
            promoted = self.promoted(model)
            if len(parts) == 1:
                return 200, {"model": model, "promoted": promoted,
                             "versions": [v.to_dict(promoted) for v in self.list(model)]}
            if len(parts) == 2 and _VERSION.match(parts[1]):
                v = self.version(model, parts[1])
                return 200, {"model": model, **v.to_dict(promoted), "report": self.gates(model, parts[1])}
        except LookupError as e:
            return 404, {"error": str(e).strip("'\"")}
        return 404, {"error": f"no such path /models/{rest}"}
