"""Runs incidents' root-cause analyses off the hot path.

Lifecycle: the ingest thread calls :meth:`RCAWorker.tick` between batches; it copies the rows of
each incident whose analysis is due (:func:`agent.rca.snapshot.take_snapshot`, milliseconds) and
queues them. One daemon thread runs :func:`detectors.rca.analyse` on the copies (one OpenMP
thread, so ingest keeps its core) and stores the result on the incident: ``rca.status`` goes
``pending`` -> ``running`` -> ``done`` or ``failed`` (with ``reason``). Nothing an analysis
raises reaches the ingest thread; the incident stays either way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from agent.background import stop_worker
from agent.config import RCAConfig
from agent.incidents.store import IncidentStore
from agent.monitor.model import ModelMonitor
from agent.rca.snapshot import RCAInput, take_snapshot
from detectors.rca import analyse

__all__ = ["RCAWorker"]

log = logging.getLogger(__name__)
_STOP = object()


class RCAWorker:
    """One analysis at a time, from a bounded queue."""

    def __init__(self, store: IncidentStore, monitors: Mapping[str, ModelMonitor], config: RCAConfig,
                 on_done: Callable[[str, str, float], None] | None = None) -> None:
        self.store = store
        self.monitors = dict(monitors)
        self.config = config
        self.on_done = on_done  # (model, status, seconds): the agent's metrics
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.queue)
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.busy = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftwarden-rca", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to finish after the analysis in hand; an unfinished one is analysed
        again after a restart (its status was checkpointed as pending or running)."""
        stop_worker(self._thread, self._queue, _STOP, timeout_s)
        self._thread = None

    def idle(self) -> bool:
        with self._lock:
            return not self._queued and not self.busy.is_set()

    # -- the ingest thread ---------------------------------------------------------------
    def tick(self) -> int:
        """Queue the analyses that are due; returns how many were queued."""
        queued = 0
        for inc in self.store.rca_due():
            with self._lock:
                if inc["id"] in self._queued:
                    continue
            refresh = inc["rca"].get("status") == "done"
            mon = self.monitors.get(str(inc.get("model")))
            if mon is None:
                self._fail(inc, f"model {inc.get('model')!r} is not monitored by this agent")
                continue
            if refresh and not self._labels_since(mon, inc):
                continue
            try:
                job = take_snapshot(mon, inc, context=self.config.windows, max_rows=self.config.max_rows)
            except Exception as e:  # noqa: BLE001 - a bad snapshot fails this analysis only
                self._fail(inc, f"snapshot: {type(e).__name__}: {e}")
                continue
            if job.rows < self.config.min_rows:
                if not refresh:
                    self._fail(inc, f"too few rows to analyse: {job.rows} in windows {list(job.windows)} "
                                    f"(rca.min_rows is {self.config.min_rows})")
                continue
            with self._lock:
                self._queued.add(inc["id"])
            try:
                self._queue.put_nowait((job, refresh))
            except queue.Full:
                with self._lock:
                    self._queued.discard(inc["id"])
                if not refresh:
                    self._fail(inc, f"the analysis queue is full ({self.config.queue} waiting)")
                continue
            if not refresh:
                self.store.set_rca(inc["id"], {"status": "pending", "queued_at": time.time()})
            queued += 1
        return queued

    def _labels_since(self, mon: ModelMonitor, inc: dict[str, Any]) -> bool:
        """An analysis made without labels is worth redoing once its windows got labels."""
        first = inc.get("first_window")
        ws = [w for w in mon.retained if first is None or w.id >= int(first)]
        need = mon.ref.config.performance.min_coverage
        return bool(ws) and all(w.rows.coverage >= need for w in ws[:1])

    def _fail(self, inc: dict[str, Any], reason: str) -> None:
        log.warning("root-cause analysis of %s failed: %s", inc["id"], reason)
        self.store.set_rca(inc["id"], {"status": "failed", "reason": reason, "finished_at": time.time()})
        if self.on_done is not None:
            self.on_done(str(inc.get("model")), "failed", 0.0)

    # -- the worker thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, refresh = item
            self.busy.set()
            try:
                self._analyse(job, refresh)
            except Exception:  # noqa: BLE001 - the thread outlives any one analysis
                log.exception("root-cause analysis of %s: unexpected error", job.incident_id)
            finally:
                with self._lock:
                    self._queued.discard(job.incident_id)
                self.busy.clear()

    def _analyse(self, job: RCAInput, refresh: bool) -> None:
        started = time.time()
        t0 = time.perf_counter()
        if not refresh:
            self.store.set_rca(job.incident_id, {"status": "running", "started_at": started,
                                                 "windows": list(job.windows), "rows": job.rows})
        c = dict(job.columns)
        current, context = job.split(self.config.min_rows)
        try:
            report = analyse(job.reference, current, context=context, target=c["target"], features=c["features"],
                             prediction=c["prediction"], score=c["score"], task=c["task"], metric=c["metric"],
                             categorical=c["categorical"], segments=c["segments"], id_column=c["id_column"],
                             window_column=c["window_column"], n_boot=self.config.n_boot,
                             min_confidence=self.config.min_confidence)
        except Exception as e:  # noqa: BLE001 - the incident stays; the analysis says why it failed
            seconds = time.perf_counter() - t0
            log.warning("root-cause analysis of %s failed after %.1fs: %s: %s", job.incident_id, seconds,
                        type(e).__name__, e)
            if not refresh:
                self.store.set_rca(job.incident_id, {"status": "failed", "reason": f"{type(e).__name__}: {e}",
                                                     "started_at": started, "finished_at": time.time(),
                                                     "seconds": round(seconds, 3), "windows": list(job.windows)})
            if self.on_done is not None:
                self.on_done(job.model, "failed", seconds)
            return
        seconds = time.perf_counter() - t0
        body = report.to_dict()
        body.update(status="done", reason=None, started_at=started, finished_at=time.time(),
                    seconds=round(seconds, 3), windows=list(job.windows), rows=job.rows, affected_rows=len(current),
                    labelled_rows=job.labelled,
                    labels=job.labelled >= 30, refreshed=refresh)
        # plain JSON as the checkpoint and HTTP write it (NaN becomes null, numpy scalars numbers)
        body = orjson.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                                         default=str))
        self.store.set_rca(job.incident_id, body)
        top = report.top
        log.warning("root cause of %s (%s, %.1fs): %s", job.incident_id, job.model, seconds,
                    f"{top.cause} ({top.confidence:.2f}): {top.summary}" if top else "no cause named")
        if self.on_done is not None:
            self.on_done(job.model, "done", seconds)
