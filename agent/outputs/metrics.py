"""Prometheus exposition: a collector that reads the agent's latest immutable snapshot.

Counts live in checkpointed state (:class:`agent.state.counters.Counters`), so they survive restarts;
gauges come from the latest judged windows. The collector is registered in the agent's own
``CollectorRegistry`` (never the global one). Metric names and labels follow DESIGN.md's
metrics contract exactly.

Every label set the agent knows at start (:class:`KnownSeries`: each configured model, its
reference's features, both topics, the incident kinds, the job statuses) is exported at 0 until
it counts something, as Prometheus advises for counters: a quiet pipeline shows 0, not "No
data", and ``rate()``/``increase()`` see the first event.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from agent.state.counters import LABEL_DELAY_BUCKETS, Counters
from agent.monitor.model import WindowResult

__all__ = ["Snapshot", "KnownSeries", "AgentCollector", "make_registry", "job_counts", "EVENT_OUTCOMES",
           "JOB_STATUSES", "SEVERITIES"]

# What agent.monitor.model and agent.pipeline count per stream: predictions can be late (their
# event-time window closed), labels can expire (their prediction never came within join.ttl).
EVENT_OUTCOMES: dict[str, tuple[str, ...]] = {"predictions": ("ok", "invalid", "duplicate", "late"),
                                              "labels": ("ok", "invalid", "duplicate", "expired")}
# driftwarden_retrain_jobs_total{status}, as DESIGN.md names them (see job_counts).
JOB_STATUSES = ("started", "succeeded", "failed", "rejected")
SEVERITIES = ("warning", "critical")
# detectors.schema.Schema.check_batch: schema kinds any reference column can break ("unexpected"
# counts keys that are *not* reference columns, so it has no known label set), skew kinds by type.
SCHEMA_KINDS = ("missing", "type")
SKEW_KINDS = {"numeric": ("out_of_range", "null"), "categorical": ("unseen_category", "null")}


@dataclass(frozen=True, slots=True)
class KnownSeries:
    """Label sets exported at 0 from the start; built once (:meth:`of`) from the configuration and
    the references, never per batch."""

    models: tuple[str, ...] = ()
    events: tuple[tuple[str, str, str], ...] = ()  # model, stream, outcome
    schema: tuple[tuple[str, str, str], ...] = ()  # model, feature, kind
    skew: tuple[tuple[str, str, str], ...] = ()  # model, feature, kind
    topics: tuple[str, ...] = ()  # source topics of driftwarden_dead_letters_total
    incident_kinds: tuple[str, ...] = ()

    @classmethod
    def of(cls, schemas: Mapping[str, Any], topics: Sequence[str], incident_kinds: Sequence[str]) -> KnownSeries:
        """``schemas``: model -> its reference's :class:`detectors.schema.Schema` (``columns`` with
        ``name``, ``kind``, ``categories_capped``)."""
        models = tuple(schemas)
        schema, skew = [], []
        for m, sch in schemas.items():
            for col in sch.columns:
                schema.extend((m, col.name, k) for k in SCHEMA_KINDS)
                kinds = SKEW_KINDS.get(col.kind, ("null",))
                if getattr(col, "categories_capped", False):  # too many categories: none is "unseen"
                    kinds = tuple(k for k in kinds if k != "unseen_category")
                skew.extend((m, col.name, k) for k in kinds)
        events = tuple((m, stream, o) for m in models for stream, outcomes in EVENT_OUTCOMES.items() for o in outcomes)
        # records whose model is unreadable or not configured count under "unknown" (agent/pipeline.py)
        events += tuple(("unknown", stream, "invalid") for stream in EVENT_OUTCOMES)
        return cls(models, events, tuple(schema), tuple(skew), tuple(dict.fromkeys(topics)), tuple(incident_kinds))


def job_counts(jobs: Iterable[Mapping[str, Any]]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Retraining jobs (``GET /jobs`` summaries) as ``driftwarden_retrain_jobs_total{model,status}``
    and the number active per model. Every job is ``started`` once; a finished one is also
    ``failed``, ``rejected`` (it trained healthily but did not beat the champion: the trainer's
    verdict "reject", nothing promoted) or ``succeeded``. Job records are kept, so each count only
    grows; started = succeeded + failed + rejected + active."""
    totals: Counter[tuple[str, str]] = Counter()
    active: Counter[str] = Counter()
    for j in jobs:
        m, status = str(j["model"]), j.get("status")
        totals[(m, "started")] += 1
        if status == "succeeded":
            totals[(m, "rejected" if j.get("verdict") == "reject" else "succeeded")] += 1
        elif status == "failed":
            totals[(m, "failed")] += 1
        else:  # pending, running
            active[m] += 1
    return dict(totals), dict(active)


def _zeros(known: Iterable[Any], counts: Mapping[Any, float]) -> list[tuple[Any, float]]:
    """``counts`` with every key of ``known`` present (0 when it counted nothing), sorted."""
    out: dict[Any, float] = dict.fromkeys(known, 0)
    out.update(counts)
    return sorted(out.items())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a scrape sees: taken by the ingest loop after each batch, never mutated."""

    counters: Counters = field(default_factory=Counters)
    latest: dict[str, WindowResult] = field(default_factory=dict)  # model -> last closed window
    latest_performance: dict[str, WindowResult] = field(default_factory=dict)  # last window with labels
    pending_labels: dict[str, int] = field(default_factory=dict)
    estimated: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> metric -> value
    concept: dict[str, dict[str, bool]] = field(default_factory=dict)  # model -> detector -> fired
    concept_drifts: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> detector -> count
    conditional: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> last settled window's verdicts
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    retrain_jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, status) -> jobs, see job_counts
    jobs_running: dict[str, int] = field(default_factory=dict)  # model -> jobs pending or running
    promoted_versions: dict[str, int] = field(default_factory=dict)  # model -> promoted version number (0: none)
    incidents_open: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (model, kind, severity)
    rca_causes: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, cause) -> confidence
    known: KnownSeries = field(default_factory=KnownSeries)  # label sets exported at 0


def _finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


class AgentCollector:
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []  # collected lazily; avoids a scrape at registration time

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        c = snap.counters

        known = snap.known
        events = CounterMetricFamily("driftwarden_events_total", "Records read, by outcome.", labels=["model", "stream", "outcome"])
        for key, n in _zeros(known.events, c.events):
            events.add_metric(list(key), n)
        yield events

        schema = CounterMetricFamily("driftwarden_schema_violations_total", "Feature values breaking the inferred schema.",
                                     labels=["model", "feature", "kind"])
        for key, n in _zeros(known.schema, c.schema):
            schema.add_metric(list(key), n)
        yield schema

        skew = CounterMetricFamily("driftwarden_value_skew_total", "Training-serving skew events per feature.",
                                   labels=["model", "feature", "kind"])
        for key, n in _zeros(known.skew, c.skew):
            skew.add_metric(list(key), n)
        yield skew

        windows = CounterMetricFamily("driftwarden_windows_total", "Windows closed and judged.", labels=["model"])
        for model, n in _zeros(known.models, c.windows):
            windows.add_metric([model], n)
        yield windows

        unlabelled = CounterMetricFamily("driftwarden_unlabelled_predictions_total",
                                         "Predictions whose label had not arrived when their window left retention.",
                                         labels=["model"])
        for model, n in _zeros(known.models, c.unlabelled):
            unlabelled.add_metric([model], n)
        yield unlabelled
        failures = CounterMetricFamily("driftwarden_window_failures_total",
                                       "Windows whose judgement raised on their data (marked failed; the agent goes on)",
                                       labels=["model"])
        for model, n in _zeros(known.models, c.window_failures):
            failures.add_metric([model], n)
        yield failures

        dlq = CounterMetricFamily("driftwarden_dead_letters_total", "Records sent to the dead-letter topic "
                                  "(<topic>.dlq), by source topic.", labels=["topic"])
        for topic, n in _zeros(known.topics, c.dead_letters):
            dlq.add_metric([topic], n)
        yield dlq

        incidents = CounterMetricFamily("driftwarden_incidents_total", "Incidents opened.", labels=["model", "kind"])
        for key, n in _zeros(((m, k) for m in known.models for k in known.incident_kinds), c.incidents):
            incidents.add_metric(list(key), n)
        yield incidents
        open_ = GaugeMetricFamily("driftwarden_incidents_open", "Incidents open now.",
                                  labels=["model", "kind", "severity"])
        for key, n in _zeros(((m, k, s) for m in known.models for k in known.incident_kinds for s in SEVERITIES),
                             snap.incidents_open):
            open_.add_metric(list(key), n)
        yield open_

        causes = GaugeMetricFamily("driftwarden_rca_cause", "Confidence of each cause the root-cause analyses of open "
                                   "incidents name (the highest over a model's open incidents).",
                                   labels=["model", "cause"])
        for key, v in sorted(snap.rca_causes.items()):
            causes.add_metric(list(key), v)
        yield causes

        jobs = CounterMetricFamily("driftwarden_retrain_jobs_total", "Retraining jobs: every job is started once, then "
                                   "succeeded, failed, or rejected (healthy but not better than the champion).",
                                   labels=["model", "status"])
        for key, n in _zeros(((m, s) for m in known.models for s in JOB_STATUSES), snap.retrain_jobs):
            jobs.add_metric(list(key), n)
        yield jobs
        running = GaugeMetricFamily("driftwarden_retrain_job_running", "Retraining jobs of the model pending or "
                                    "running now (one at most per model).", labels=["model"])
        for model, n in _zeros(known.models, snap.jobs_running):
            running.add_metric([model], n)
        yield running
        promoted = GaugeMetricFamily("driftwarden_model_promoted_version", "Number of the model's promoted registry "
                                     "version (v0003 is 3); 0 while none is promoted.", labels=["model"])
        for model, n in _zeros(known.models, snap.promoted_versions):
            promoted.add_metric([model], n)
        yield promoted

        delay = HistogramMetricFamily("driftwarden_label_delay_seconds", "Event-time delay from prediction to its label.",
                                      labels=["model"])
        empty = np.zeros(len(LABEL_DELAY_BUCKETS) + 1, dtype=np.int64)
        for model in sorted({*known.models, *c.label_delay}):
            cum = c.label_delay.get(model, empty).cumsum()
            buckets = [(repr(b) if b != int(b) else f"{b:.1f}", int(n)) for b, n in zip(LABEL_DELAY_BUCKETS, cum[:-1])]
            buckets.append(("+Inf", int(cum[-1])))
            delay.add_metric([model], buckets, c.label_delay_sum.get(model, 0) / 1000.0)
        yield delay

        yield from self._drift(snap)
        yield from self._performance(snap)

        pending = GaugeMetricFamily("driftwarden_join_pending_labels", "Labels waiting for their prediction.", labels=["model"])
        for model, n in sorted(snap.pending_labels.items()):
            pending.add_metric([model], n)
        yield pending

        lag = GaugeMetricFamily("driftwarden_consumer_lag", "Records behind the end of the partition.", labels=["topic", "partition"])
        for (topic, part), n in sorted(snap.lag.items()):
            lag.add_metric([topic, str(part)], n)
        yield lag

    def _drift(self, snap: Snapshot) -> Iterator[Metric]:
        score = GaugeMetricFamily("driftwarden_feature_drift_score", "Drift statistic of a feature in the last window.",
                                  labels=["model", "feature", "method"])
        pvalue = GaugeMetricFamily("driftwarden_feature_drift_pvalue",
                                   "p-value of the verdict test (adjusted across features) in the last window.",
                                   labels=["model", "feature", "test"])
        detected = GaugeMetricFamily("driftwarden_feature_drift_detected", "1 if the feature drifted in the last window.",
                                     labels=["model", "feature"])
        share = GaugeMetricFamily("driftwarden_dataset_drift_share", "Share of features drifted in the last window.", labels=["model"])
        pred = GaugeMetricFamily("driftwarden_prediction_drift_score", "Drift of the model output in the last window.",
                                 labels=["model", "method"])
        wid = GaugeMetricFamily("driftwarden_window_id", "Sequence number of the last judged window.", labels=["model"])
        for model, res in sorted(snap.latest.items()):
            for r in res.drift.scores:
                if r.method in ("ks", "chi2"):
                    continue  # their statistic is exported with the verdict below
                score.add_metric([model, r.feature, r.method], r.statistic)
            for r in res.drift.features:
                score.add_metric([model, r.feature, r.method], r.statistic)
                if r.p_value is not None:
                    pvalue.add_metric([model, r.feature, r.method], r.p_value)
                detected.add_metric([model, r.feature], 1.0 if r.drifted else 0.0)
            share.add_metric([model], res.drift.drift_share)
            wid.add_metric([model], res.window_id)
            if res.prediction_drift is not None:
                pd_ = res.prediction_drift
                pred.add_metric([model, pd_.method], pd_.statistic)
                if pd_.method == "ks":
                    pred.add_metric([model, "wasserstein"], pd_.effect_size)
        yield from (score, pvalue, detected, share, pred, wid)

    def _performance(self, snap: Snapshot) -> Iterator[Metric]:
        perf = GaugeMetricFamily("driftwarden_performance", "Realized performance of the latest window with labels.",
                                 labels=["model", "metric", "segment"])
        coverage = GaugeMetricFamily("driftwarden_label_coverage", "Share of that window's predictions with a label.",
                                     labels=["model"])
        lower = GaugeMetricFamily("driftwarden_performance_lower", "Lower bound of the 95% interval of driftwarden_performance.",
                                  labels=["model", "metric", "segment"])
        upper = GaugeMetricFamily("driftwarden_performance_upper", "Upper bound of the 95% interval of driftwarden_performance.",
                                  labels=["model", "metric", "segment"])
        provisional = GaugeMetricFamily("driftwarden_performance_provisional",
                                        "1 while that window's labels are still coming in (coverage below "
                                        "performance.min_coverage and label lateness not over).", labels=["model"])
        perf_window = GaugeMetricFamily("driftwarden_performance_window_id", "Window that driftwarden_performance describes.",
                                        labels=["model"])
        for model, res in sorted(snap.latest_performance.items()):
            for segment, metrics in sorted(res.performance.items()):
                for metric, value in sorted(metrics.items()):
                    if _finite(value):
                        perf.add_metric([model, metric, segment], value)
                for metric, (lo, hi) in sorted(res.ci.get(segment, {}).items()):
                    lower.add_metric([model, metric, segment], lo)
                    upper.add_metric([model, metric, segment], hi)
            coverage.add_metric([model], res.label_coverage)
            provisional.add_metric([model], 1.0 if res.provisional else 0.0)
            perf_window.add_metric([model], res.window_id)
        yield from (perf, lower, upper, coverage, provisional, perf_window)
        est = GaugeMetricFamily("driftwarden_estimated_performance", "Label-free performance estimate of the latest window.",
                                labels=["model", "metric"])
        for model, metrics in sorted(snap.estimated.items()):
            for metric, value in sorted(metrics.items()):
                if _finite(value):
                    est.add_metric([model, metric], value)
        yield est
        concept = GaugeMetricFamily("driftwarden_concept_drift_detected", "1 if the detector fired on the error stream.",
                                    labels=["model", "detector"])
        for model, dets in sorted(snap.concept.items()):
            for det, fired in sorted(dets.items()):
                concept.add_metric([model, det], 1.0 if fired else 0.0)
        shift = GaugeMetricFamily("driftwarden_label_shift_detected", "1 if the class priors of the last settled window moved.",
                                  labels=["model"])
        realized = GaugeMetricFamily("driftwarden_error_rate", "Error rate of the last settled window: realized, and "
                                     "expected under the reference relation P(y|x) (CBPE).", labels=["model", "kind"])
        for model, cond in sorted(snap.conditional.items()):
            if "label_shift" in cond:
                shift.add_metric([model], 1.0 if cond["label_shift"]["drifted"] else 0.0)
            if "conditional" in cond:
                c = cond["conditional"]
                concept.add_metric([model, "conditional"], 1.0 if c["kind"] in ("concept_drift", "both") else 0.0)
                realized.add_metric([model, "realized"], c["realized_error_window"])
                realized.add_metric([model, "expected"], c["expected_error_window"])
                realized.add_metric([model, "expected_reference"], c["expected_error_reference"])
        yield concept
        yield shift
        yield realized
        drifts = CounterMetricFamily("driftwarden_concept_drifts", "Detections by each concept-drift detector on the "
                                     "error stream.", labels=["model", "detector"])
        for model, dets in sorted(snap.concept_drifts.items()):
            for det, n in sorted(dets.items()):
                drifts.add_metric([model, det], n)
        yield drifts


def make_registry(snapshot: Callable[[], Snapshot]) -> tuple[CollectorRegistry, Histogram, Histogram]:
    """The agent's registry, its processing-time histogram and its root-cause-analysis-time
    histogram (process-local, not checkpointed)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(snapshot))
    stages = Histogram("driftwarden_processing_seconds", "Time spent per batch in each pipeline stage.", ["stage"],
                       registry=registry, buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
    rca = Histogram("driftwarden_rca_seconds", "Time a root-cause analysis took, by outcome (done, failed).",
                    ["model", "status"], registry=registry, buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300))
    return registry, stages, rca
