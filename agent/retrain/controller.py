"""From an analysis that says ``retrain`` to a job: the agent's side of retraining.

Lifecycle: :meth:`RetrainController.on_final` (ingest thread) appends each window that leaves label
retention to the labelled-traffic store (idempotent by window id: a replay after a crash neither
loses nor repeats a window); :meth:`tick` (ingest thread, between batches) picks incidents whose
analysis is done and asks to retrain, once each, and queues them; one daemon thread builds the
dataset snapshot (the reference + the stored traffic of the incident's own windows, importance-weighted, the analysis' segments covered,
its label-noise suspects excluded, the newest rows held out) and submits the job to the
:class:`~agent.retrain.jobs.JobManager`, whose launchers run it and whose registry keeps the
version (promoted only when the champion gate passed). What happened is on the incident:
``retrain: {status: queued|waiting|submitted|refused|failed, job?, reason?}`` (``waiting``: fewer than
``retrain.min_rows`` labelled rows since the incident's first window are stored yet; retried).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.background import stop_worker
from agent.config import ModelConfig
from agent.incidents.store import IncidentStore
from agent.monitor.model import ModelMonitor
from agent.monitor.windows import Window
from agent.rca.snapshot import LABELLED, WINDOW, window_frame
from agent.retrain.dataset import DatasetSpec, build_dataset
from agent.retrain.jobs import JobManager, JobRefused
from agent.retrain.traffic import TrafficStore

__all__ = ["RetrainController", "launchers_for", "launcher_name"]

log = logging.getLogger(__name__)
_STOP = object()


def launcher_name(model: str, cfg: ModelConfig) -> str:
    """The key of a model's launcher in :func:`launchers_for`'s mapping."""
    return "local" if cfg.retrain.launcher == "local" else f"{cfg.retrain.launcher}:{model}"


def launchers_for(models: Mapping[str, ModelConfig], state_dir: str | Path) -> dict[str, Any]:
    """The launchers these models' ``retrain`` blocks name: one shared ``local``, one ``command``
    or ``kubernetes`` launcher per model that asks for one."""
    from agent.retrain.launchers import CommandLauncher, LocalLauncher

    out: dict[str, Any] = {"local": LocalLauncher()}
    for name, m in models.items():
        if m.retrain.launcher == "command":
            out[launcher_name(name, m)] = CommandLauncher(m.retrain.command)
        elif m.retrain.launcher == "kubernetes":
            from agent.retrain.kubernetes_launcher import launcher_from_config

            out[launcher_name(name, m)] = launcher_from_config(m.retrain.kubernetes, state_dir)
    return out


class RetrainController:
    """Labelled traffic in, retraining jobs out, for every model of one agent."""

    def __init__(self, state_dir: Path, models: Mapping[str, ModelConfig], monitors: Mapping[str, ModelMonitor],
                 incidents: IncidentStore, jobs: JobManager, *, retry_s: float = 10.0) -> None:
        self.state_dir = Path(state_dir)
        self.retry_s = retry_s
        self.models = dict(models)
        self.monitors = dict(monitors)
        self.incidents = incidents
        self.jobs = jobs
        self.traffic = {name: TrafficStore(self.state_dir, name, max_age_s=m.retrain.traffic_max_age_s,
                                           max_bytes=m.retrain.traffic_max_bytes) for name, m in self.models.items()}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=64)
        self._taken: set[str] = set()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.jobs.start()
        self._thread = threading.Thread(target=self._run, name="driftwarden-retrain", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        stop_worker(self._thread, self._queue, _STOP, timeout_s)
        self._thread = None
        self.jobs.stop()

    # -- the ingest thread ---------------------------------------------------------------
    def on_final(self, mon: ModelMonitor, w: Window) -> None:
        """Store a window that leaves retention (its labelled rows)."""
        store = self.traffic.get(mon.name)
        if store is None or w.rows.n == 0:
            return
        frame = window_frame(mon, w)
        frame = frame[frame[LABELLED]].drop(columns=[LABELLED, WINDOW])  # the store adds its window column
        if len(frame) == 0:
            return
        try:
            store.append(w.id, frame, event_time_s=float(w.end_s))
            store.enforce_retention(float(w.end_s))
        except OSError as e:  # a full disk must not stop monitoring
            log.warning("traffic store of %s: window %d not stored: %s", mon.name, w.id, e)

    def tick(self) -> int:
        """Queue the incidents whose finished analysis asks to retrain (once each)."""
        queued = 0
        for inc in self.incidents.rca_done():
            model = str(inc.get("model"))
            cfg = self.models.get(model)
            if cfg is None or not cfg.retrain.enabled or inc["id"] in self._taken:
                continue
            done = inc.get("retrain")
            if done and not (done.get("status") == "waiting" and time.time() >= float(done.get("retry_at", 0.0))):
                continue
            actions = [a for a in inc["rca"].get("actions", []) if a.get("action") == "retrain"]
            if not actions:
                continue
            self._taken.add(inc["id"])
            try:
                self._queue.put_nowait((inc["id"], model, actions[0]))
            except queue.Full:
                self._taken.discard(inc["id"])
                continue
            self.incidents.set_field(inc["id"], "retrain", {"status": "queued", "at": time.time(),
                                                            **({"waited": done["reason"]} if done else {})})
            queued += 1
        return queued

    # -- the retraining thread -----------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            incident_id, model, action = item
            try:
                out = self.launch(incident_id, model, action)
                if out["status"] == "waiting":
                    self._taken.discard(incident_id)   # tick queues it again at retry_at
            except Exception as e:  # noqa: BLE001 - one incident's job fails, the agent goes on
                log.exception("retraining for %s failed", incident_id)
                self.incidents.set_field(incident_id, "retrain", {"status": "failed", "reason": f"{type(e).__name__}: {e}"})

    def dataset_spec(self, model: str, action: Mapping[str, Any]) -> DatasetSpec:
        cfg = self.models[model]
        mon = self.monitors[model]
        task = {"binary_classification": "binary", "multiclass_classification": "multiclass"}.get(cfg.task, cfg.task)
        return DatasetSpec(target=cfg.target, features=tuple(mon.ref.drift.features),
                           categorical=tuple(mon.ref.categorical), task=task, id_column="id", time_column="timestamp",
                           prediction_column=cfg.prediction, score_column=cfg.score, window_column=WINDOW,
                           segments=tuple(action.get("segments") or ()),
                           stale_segments=tuple(action.get("stale_segments") or ()),
                           exclude_ids=tuple(str(i) for i in action.get("exclude_ids") or ()),
                           min_support=cfg.retrain.min_support, holdout_share=cfg.retrain.holdout_share,
                           reference_ids=False)

    def launch(self, incident_id: str, model: str, action: Mapping[str, Any], force: bool = False) -> dict[str, Any]:
        """Build the dataset and submit the job (the same path ``driftwarden retrain`` takes by hand)."""
        from threadpoolctl import threadpool_limits

        cfg = self.models[model]
        mon = self.monitors[model]
        recent = self.traffic[model].read()
        status, inc = self.incidents.get(incident_id)
        first = inc.get("first_window") if status == 200 else None
        since = len(recent) if first is None else int((recent[WINDOW] >= int(first)).sum())
        if since < cfg.retrain.min_rows:
            # Retraining on the traffic from before the incident would relearn what broke: wait for
            # the incident's own windows to leave label retention (the incident's tick retries).
            out = {"status": "waiting", "at": time.time(), "retry_at": time.time() + self.retry_s,
                   "reason": f"{since} labelled rows stored" + (f" since window {first} (the incident's first)"
                                                                if first is not None else "")
                             + f", retrain.min_rows is {cfg.retrain.min_rows}"}
            self.incidents.set_field(incident_id, "retrain", out)
            return out
        if first is not None:
            recent = recent[recent[WINDOW] >= int(first)].reset_index(drop=True)
        recent["id"] = recent["id"].astype(str)
        keep = [c for c in mon.ref.frame.columns if c in recent.columns and c not in ("id", "timestamp")]
        reference = mon.ref.frame[keep]
        out_dir = self.state_dir / "snapshots" / f"{incident_id}-{int(time.time())}"
        with threadpool_limits(limits=1, user_api="openmp"):  # beside ingest: one core
            manifest = build_dataset(reference, recent, self.dataset_spec(model, action), out_dir)
        train: dict[str, Any] = {"segment_columns": list(cfg.segments)}
        if cfg.retrain.epochs:
            train["config"] = {"epochs": cfg.retrain.epochs}
        try:
            rec = self.jobs.submit(model, out_dir, incident=incident_id, launcher=launcher_name(model, cfg), train=train,
                                   timeout_s=cfg.retrain.timeout_s, force=force)
        except JobRefused as e:
            out = {"status": "refused", "reason": str(e), "snapshot": str(out_dir)}
            self.incidents.set_field(incident_id, "retrain", out)
            return out
        out = {"status": "submitted", "job": rec.id, "snapshot": str(out_dir), "at": time.time(),
               "rows": {"train_reference": manifest.rows.train_reference, "train_recent": manifest.rows.train_recent,
                        "holdout": manifest.rows.holdout},
               "fallback": manifest.fallback_reason if manifest.fallback else None}
        self.incidents.set_field(incident_id, "retrain", out)
        log.warning("retraining job %s for %s (%s) submitted: %s", rec.id, model, incident_id, rec.status)
        return out
