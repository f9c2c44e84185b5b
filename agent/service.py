"""The agent service: one object owns every long-lived resource (start, run, stop).

The ingest loop polls the broker, runs the vectorised pipeline, dead-letters bad records,
commits offsets only once the batch's effects are recorded (dead letters flushed), and
publishes an immutable snapshot that the HTTP thread serves. Signal handlers only set a flag;
``stop()`` runs a fixed, logged order.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import orjson

from agent.config import Config
from agent.faults import FaultPoints
from agent.incidents.rules import KINDS
from agent.incidents.watch import IncidentWatch
from agent.incidents.store import IncidentStore
from agent.rca.worker import RCAWorker
from agent.ingest import make_broker
from agent.ingest.admin import ensure_topics
from agent.ingest.broker import DLQ_SUFFIX, Broker, TopicPartitionKey, next_offsets
from agent.monitor.model import ModelMonitor, WindowResult
from agent.monitor.reference import ModelReference
from agent.outputs.http import AgentHTTPServer, HtmlPage
from agent.outputs.metrics import KnownSeries, Snapshot, job_counts, make_registry
from agent.pipeline import Pipeline
from agent.state.checkpoint import CheckpointStore
from agent.state.counters import Counters

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class Agent:
    """driftwarden's monitoring agent for the models of one configuration."""

    def __init__(self, config: Config, broker: Broker | None = None, evaluate_interval_s: float = 1.0) -> None:
        self.config = config
        self._broker = broker
        self._embedded: Any = None
        self._stopping = threading.Event()
        self._started = False
        self.evaluate_interval_s = evaluate_interval_s
        self.counters = Counters()
        self._snapshot = Snapshot()
        self.registry, self._stage_hist, self._rca_hist = make_registry(lambda: self._snapshot)
        self.http: AgentHTTPServer | None = None
        self.monitors: dict[str, ModelMonitor] = {}
        self.pipeline: Pipeline | None = None
        self.incidents = IncidentStore(self.counters, rca=config.rca.enabled)
        self.watch: IncidentWatch | None = None
        self.rca: RCAWorker | None = None
        self.retrain: Any = None  # agent.retrain.controller.RetrainController, built at start
        self._results_dir = Path(config.state_dir) / "windows"
        self.batches = 0
        self.fault = FaultPoints.from_env()
        self.checkpoints = CheckpointStore(Path(config.state_dir), fault=self.fault)
        self.offsets: dict[TopicPartitionKey, int] = {}  # next offset whose effect is NOT in state
        self._last_save = time.monotonic()
        self._unsaved = False
        self._saved_incidents = 0  # IncidentStore.version in the last checkpoint
        self.lag_interval_s = 5.0
        self._lag_at = -float("inf")
        self._known = KnownSeries()  # label sets exported at 0: set once the monitors exist
        self.registry_interval_s = 5.0  # the model registry is on disk: read at most this often (or on a job change)
        self._retrain_view: tuple[Any, float, tuple[dict, dict, dict]] | None = None  # (job counts, when, view)

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def broker(self) -> Broker:
        assert self._broker is not None, "agent not started"
        return self._broker

    def start(self) -> None:
        """Load references, connect the broker, serve HTTP. Raises with a clear message on
        anything that makes the agent useless (bad reference, unreachable port)."""
        cfg = self.config
        t0 = time.perf_counter()
        refs = {name: ModelReference.load(name, m) for name, m in cfg.models.items()}
        cp = self.checkpoints.load()
        if cp is not None:
            self.counters = cp.counters
            self.offsets = dict(cp.offsets)
            self.incidents = IncidentStore.from_state(cp.extra, self.counters, rca=cfg.rca.enabled)
        self.monitors = {
            name: ModelMonitor(ref, self.counters, ttl_s=cfg.join.ttl, max_pending_labels=cfg.join.max_pending_labels,
                               on_result=self._record, on_final=self._on_final)
            for name, ref in refs.items()
        }
        self.watch = IncidentWatch(cfg.models, self.monitors, self.incidents)
        if cp is not None:
            self.watch.restore(cp.extra.get("incident_watch", {}))
        self.retrain = self._retrainer()
        self.rca = RCAWorker(self.incidents, self.monitors, cfg.rca,
                             on_done=lambda m, status, s: self._rca_hist.labels(m, status).observe(s))
        if cfg.rca.enabled:
            for m in self.monitors:  # a quiet agent shows 0 analyses, not "No data"
                for status in ("done", "failed"):
                    self._rca_hist.labels(m, status)
            self.rca.start()
        if cp is not None:
            self.checkpoints.restore(cp, self.monitors)
            log.info("restored checkpoint %s (offsets %s)", self.checkpoints.path, cp.offsets)
        log.info("loaded %d reference(s) in %.1fs", len(refs), time.perf_counter() - t0)
        self.pipeline = Pipeline(self.monitors, self.counters, cfg.kafka.predictions_topic, cfg.kafka.labels_topic,
                                 cfg.kafka.max_record_bytes, on_stage=lambda s, dt: self._stage_hist.labels(s).observe(dt))
        log.info("decoding records with %s", "the native scanner (agent.decode._scan)" if self.pipeline.decoder.route == "native"
                 else "msgspec only: agent.decode._scan is not built (no C compiler at install time), decoding is slower")
        self._results_dir.mkdir(parents=True, exist_ok=True)
        token = os.environ.get(cfg.http.token_env) or None
        if token is None:
            log.warning("no bearer token in $%s: data-bearing endpoints are open", cfg.http.token_env)
        self.http = AgentHTTPServer(
            cfg.http.host, cfg.http.port, self.registry, self._ready, token, cfg.http.max_body_bytes,
            {"/incidents": self._get_incidents, "/windows": self._get_windows, "/jobs": self.retrain.jobs.get,
             "/models": self.retrain.jobs.registry.get if self.retrain.jobs.registry else self._no_models},
            self.incidents.on_alerts,
        )
        self.http.start()
        log.info("serving /metrics on http://%s:%d/metrics", cfg.http.host, self.http.port)
        if self._broker is None:
            bootstrap = cfg.kafka.bootstrap_servers
            if cfg.kafka.embedded:
                from agent.ingest.embedded import EmbeddedBroker

                self._embedded = EmbeddedBroker().start()
                bootstrap = self._embedded.bootstrap
                log.info("embedded broker at %s", bootstrap)
            k = cfg.kafka
            ensure_topics(bootstrap, [k.predictions_topic, k.labels_topic, k.predictions_topic + DLQ_SUFFIX,
                                      k.labels_topic + DLQ_SUFFIX], k.client_options)
            self._broker = make_broker(k.client, bootstrap, [k.predictions_topic, k.labels_topic], k.group_id,
                                       k.client_options, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._broker.start()
        self._started = True
        self._publish()  # /metrics shows every known series at 0 before the first poll

    @property
    def bootstrap(self) -> str | None:
        return self._embedded.bootstrap if self._embedded is not None else None

    def request_stop(self) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.request_stop())

    def run(self, max_batches: int | None = None, until: Callable[[], bool] | None = None, poll_timeout_s: float = 0.5) -> None:
        """Start, loop until stopped (or ``max_batches`` polls, or ``until()``), then stop."""
        if not self._started:
            self.start()
        try:
            self.loop(max_batches, until, poll_timeout_s)
        finally:
            self.stop()

    def loop(self, max_batches: int | None = None, until: Callable[[], bool] | None = None, poll_timeout_s: float = 0.5) -> None:
        assert self.pipeline is not None
        done = 0
        last_eval = time.monotonic()
        while not self._stopping.is_set() and done != max_batches and not (until and until()):
            batches = self.broker.poll(max_records=self.config.kafka.max_poll_records, timeout_s=poll_timeout_s)
            results, dead = self.pipeline.process(batches)
            for d in dead:
                self.broker.dead_letter(d.topic, d.key, d.value, d.reason, d.partition, d.offset)
            now = time.monotonic()
            if now - last_eval >= self.evaluate_interval_s:
                self.pipeline.evaluate()
                last_eval = now
                if self.rca is not None and self.config.rca.enabled:
                    self.rca.tick()
                if self.retrain is not None:
                    self.retrain.tick()
            if batches:
                self.offsets.update(next_offsets(batches))
                self._unsaved = True
                if any(not r.final for r in results):
                    self.fault("window-closed")
                self.fault("batch-processed")
                interval = self.config.checkpoint.interval_s
                if any(not r.final for r in results) or now - self._last_save >= interval:
                    self.checkpoint()
            elif self.incidents.version != self._saved_incidents and now - self._last_save >= self.config.checkpoint.interval_s:
                self.checkpoint()  # an analysis finished while no traffic came: keep it across a crash
            self._publish()
            done += 1
            self.batches += 1

    def checkpoint(self, commit_timeout_s: float | None = None, flush_timeout_s: float = 30.0) -> bool:
        """Save state + offsets atomically, then commit those offsets to Kafka (a hint only).

        Dead letters are flushed first: a record's effect includes its dead letter."""
        if not self.broker.flush(flush_timeout_s):
            log.warning("dead letters not yet delivered: checkpoint postponed")
            return False
        version = self.incidents.version  # read first: a change after it is saved next time
        extra = {**self.incidents.state(), "incident_watch": self.watch.state() if self.watch is not None else {}}
        self.checkpoints.save(self.offsets, self.counters, self.monitors, extra)
        self._saved_incidents = version
        self._last_save = time.monotonic()
        self._unsaved = False
        self.broker.commit(dict(self.offsets), timeout_s=commit_timeout_s)
        return True

    def _on_assign(self, partitions: set[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        # The in-memory position, not the last file: after a broker restart the group is
        # rebuilt and kafka's committed offsets may lag what this process already counted.
        return {p: o for p, o in self.offsets.items() if p in partitions}

    def _on_revoke(self, partitions: set[TopicPartitionKey]) -> None:
        if self._unsaved and partitions:
            try:
                self.checkpoint()
            except Exception as e:  # noqa: BLE001 - never fail a rebalance
                log.warning("checkpoint on revoke failed: %s", e)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        log.info("stopping: final evaluation")
        if self.pipeline is not None:
            self.pipeline.evaluate()
            self._publish()
        log.info("stopping: checkpoint, commit, close the consumer")
        try:
            # Bounded: within a Kubernetes grace period even with the broker gone (the commit is a
            # hint; undelivered dead letters keep the previous checkpoint, so nothing is lost).
            up = self.broker.connected()
            self.checkpoint(commit_timeout_s=3.0 if up else 0.1, flush_timeout_s=5.0 if up else 1.0)
            self.broker.close(timeout_s=5.0)
        except Exception as e:  # noqa: BLE001 - keep shutting down
            log.warning("broker close failed: %s", e)
        if self.rca is not None:
            self.rca.stop()
        if self.retrain is not None:
            self.retrain.stop()
        if self.http is not None:
            log.info("stopping: HTTP server")
            self.http.stop()
        if self._embedded is not None:
            log.info("stopping: embedded broker")
            self._embedded.stop()
        log.info("stopped")

    # -- state published to HTTP ---------------------------------------------------------
    def _publish(self) -> None:
        latest = {m: mon.latest for m, mon in self.monitors.items() if mon.latest is not None}
        perf = {m: mon.latest_perf for m, mon in self.monitors.items() if mon.latest_perf is not None}
        lag = self._snapshot.lag
        now = time.monotonic()
        # a broker round trip: not on every poll, and not while the broker is gone (it would wait)
        if now - self._lag_at >= self.lag_interval_s and self.broker.connected():
            self._lag_at = now
            try:
                lag = self.broker.lag()
            except Exception:  # noqa: BLE001 - lag is informative only
                pass
        jobs, running, promoted = self._retrain_metrics()
        self._snapshot = Snapshot(
            counters=self.counters.copy(), latest=latest, latest_performance=perf,
            pending_labels={m: len(mon.pending) for m, mon in self.monitors.items()},
            estimated={m: mon.latest_estimate for m, mon in self.monitors.items() if mon.latest_estimate},
            concept={m: mon.concept.detected() for m, mon in self.monitors.items()},
            concept_drifts={m: dict(mon.concept.drifts) for m, mon in self.monitors.items()},
            conditional={m: mon.latest_conditional.to_dict() for m, mon in self.monitors.items()
                         if mon.latest_conditional is not None},
            lag=lag, incidents_open=self.incidents.open_by_kind(), rca_causes=self.incidents.causes_open(),
            retrain_jobs=jobs, jobs_running=running, promoted_versions=promoted, known=self._known_series(),
        )

    def _known_series(self) -> KnownSeries:
        """Every configured model's label sets (its reference's features, both topics, the incident
        kinds: the rules' and "alertmanager", those POST /alerts opens), exported at 0 until they
        count: built once, when the monitors first exist."""
        if self._known.models != tuple(self.monitors):
            k = self.config.kafka
            self._known = KnownSeries.of({m: mon.ref.schema for m, mon in self.monitors.items()},
                                         (k.predictions_topic, k.labels_topic), (*KINDS, "alertmanager"))
        return self._known

    def _retrain_metrics(self) -> tuple[dict, dict, dict]:
        """(jobs by model and status, active jobs per model, promoted version per model). Job
        counts are in memory; the job list and the on-disk registry are read again only when they
        change or every ``registry_interval_s``, never on every batch."""
        if self.retrain is None:
            return {}, {}, {}
        jobs = self.retrain.jobs
        key, now, view = jobs.counts(), time.monotonic(), self._retrain_view
        if view is not None and view[0] == key and now - view[1] < self.registry_interval_s:
            return view[2]
        totals, active = job_counts(jobs.list()[1])
        old = view[2][2] if view is not None else {}
        promoted = {}
        for m in self.monitors:
            try:
                v = jobs.registry.promoted(m) if jobs.registry is not None else None
                promoted[m] = int(v[1:]) if v else 0
            except Exception as e:  # noqa: BLE001 - informative only: keep the last value
                log.debug("reading the promoted version of %s: %s", m, e)
                promoted[m] = old.get(m, 0)
        self._retrain_view = (key, now, (totals, active, promoted))
        return totals, active, promoted

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def _ready(self) -> tuple[bool, str]:
        if not self.monitors:
            return False, "references not loaded"
        if self._broker is None or not self._broker.connected():
            return False, "broker not connected"
        return True, "ok"

    def _record(self, res: WindowResult) -> None:
        """Every judgement: appended to the window journal, then put to the incident rules."""
        with open(self._results_dir / f"{res.model}.jsonl", "ab") as f:
            f.write(orjson.dumps(res.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        if self.watch is not None:
            self.watch.observe(res)

    def _retrainer(self) -> Any:
        """The job manager (its launchers, the model registry) and the controller that feeds it."""
        from agent.retrain.controller import RetrainController, launchers_for
        from agent.retrain.jobs import JobManager
        from agent.retrain.registry import ModelRegistry

        cfg = self.config
        enabled = {n: m for n, m in cfg.models.items() if m.retrain.enabled}
        launchers = launchers_for(enabled, cfg.state_dir)
        state = Path(cfg.state_dir)
        jobs = JobManager(state, launchers, ModelRegistry(state), default_launcher="local",
                          cooldown_s=max(m.retrain.cooldown_s for m in cfg.models.values()))
        ctl = RetrainController(state, enabled, {n: self.monitors[n] for n in enabled}, self.incidents, jobs)
        ctl.start()
        return ctl

    def _on_final(self, mon: ModelMonitor, w: Any) -> None:
        if self.retrain is not None:
            self.retrain.on_final(mon, w)

    @staticmethod
    def _no_models(rest: str) -> tuple[int, Any]:
        return 200, {}

    def _get_incidents(self, rest: str) -> tuple[int, Any]:
        """``/incidents``, ``/incidents/{id}`` and ``/incidents/{id}/report`` (the HTML page)."""
        if rest.endswith("/report"):
            status, inc = self.incidents.get(rest[: -len("/report")])
            if status != 200:
                return status, inc
            from agent.rca.report import render_report

            return 200, HtmlPage(render_report(inc))
        return self.incidents.get(rest)

    def _get_windows(self, rest: str) -> tuple[int, Any]:
        model = rest or None
        if model is not None and model not in self.monitors:
            return 404, {"error": f"unknown model {model!r}"}
        out = {}
        for m in [model] if model else list(self.monitors):
            res = self._snapshot.latest.get(m)
            out[m] = None if res is None else res.to_dict()
        return 200, out
