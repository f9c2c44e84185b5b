"""driftwarden: pipeline health (uid ``driftwarden-pipeline``): is the agent keeping up and is its
input sound. Records by outcome, dead letters, schema and skew rates, consumer lag, per-stage
processing time, windows and their failures."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from .common import M, RI, dashboard, queries, query, single, ts, with_rows

UID = "driftwarden-pipeline"
STAGES = f"sum by (stage, le) (rate(driftwarden_processing_seconds_bucket[{RI}]))"


def build() -> model.Dashboard:
    d = dashboard(UID, "driftwarden: pipeline health", "The agent's ingest path: what it reads and rejects, data "
                  "quality per kind, consumer lag, processing time per stage, windows and window failures. Panels "
                  "on topics and stages cover every model.", tags=["pipeline"], time_from="now-3h")
    glance = [
        single("Agents up", 'sum(up{job="driftwarden"})', desc="Targets of job driftwarden that Prometheus scrapes "
               "(DriftwardenDown/DriftwardenAbsent page when this falls).", steps=[(None, "red"), (1, "green")]),
        single("Records/s", f"sum(rate(driftwarden_events_total{{{M}}}[{RI}]))", "reqps",
               "This model's records read, both streams, every outcome."),
        single("Dead letters/s", f"sum(rate(driftwarden_dead_letters_total[{RI}]))", "reqps",
               "Records sent to <topic>.dlq, all topics.", steps=[(None, "green"), (0.01, "orange")]),
        single("Consumer lag", "sum(driftwarden_consumer_lag)", desc="Records behind the partitions' ends (all topics).",
               steps=[(None, "green"), (100000, "red")]),
        single("Window failures (range)", f"sum(increase(driftwarden_window_failures_total{{{M}}}[$__range]))",
               desc="Windows of this model whose judgement raised (marked failed, the agent goes on).",
               steps=[(None, "green"), (1, "red")], decimals=0),
        single("p99 batch time", f"max(histogram_quantile(0.99, {STAGES}))", "s",
               "Slowest stage's 99th percentile per batch.", decimals=3),
    ]
    streams = [
        ts("Events/s by stream and outcome", "reqps",
           query(f"sum by (stream, outcome) (rate(driftwarden_events_total{{{M}}}[{RI}]))", "{{stream}} {{outcome}}"),
           desc="This model's records: ok, invalid, duplicate, late (predictions), expired (labels).", lo=0),
        ts("Dead letters/s by topic", "reqps",
           *queries((f"sum by (topic) (rate(driftwarden_dead_letters_total[{RI}]))", "{{topic}}"),
                    (f"sum by (stream) (rate(driftwarden_events_total{{model=\"unknown\",outcome=\"invalid\"}}[{RI}]))",
                     "model unreadable ({{stream}})")),
           desc="Records sent to <topic>.dlq by source topic (all models), and those whose model could not be read.",
           lo=0),
    ]
    quality = [
        ts("Schema violations/s by kind", "reqps",
           query(f"sum by (kind) (rate(driftwarden_schema_violations_total{{{M}}}[{RI}]))", "{{kind}}"),
           desc="Feature values missing, of the wrong JSON type, or keys unknown to the reference (unexpected).",
           lo=0, w=8),
        ts("Value skew/s by kind", "reqps",
           query(f"sum by (kind) (rate(driftwarden_value_skew_total{{{M}}}[{RI}]))", "{{kind}}"),
           desc="Values outside the reference range, unseen categories, nulls.", lo=0, w=8),
        ts("Skewed values per prediction", "percentunit",
           query(f"sum(rate(driftwarden_value_skew_total{{{M}}}[{RI}])) / clamp_min(sum(rate(driftwarden_events_total"
                 f"{{{M},stream=\"predictions\",outcome=\"ok\"}}[{RI}])), 1e-9)", "skew events per prediction"),
           desc="Skew events per valid prediction: a pipeline fault at a feature shows as a step.", lo=0, w=8),
    ]
    kafka = [
        ts("Consumer lag by partition", "short",
           query("sum by (topic, partition) (driftwarden_consumer_lag)", "{{topic}}/{{partition}}"),
           desc="Records behind the end of each assigned partition (DriftwardenConsumerLag above 100,000).", lo=0),
        ts("Labels waiting and unlabelled", "short",
           *queries((f"driftwarden_join_pending_labels{{{M}}}", "labels waiting for their prediction"),
                    (f"rate(driftwarden_unlabelled_predictions_total{{{M}}}[{RI}])", "unlabelled predictions/s")),
           desc="The join's buffer (bounded by join.max_pending_labels) and predictions never labelled.", lo=0),
    ]
    processing = [
        ts("Processing time p99 per stage", "s", query(f"histogram_quantile(0.99, {STAGES})", "{{stage}}"),
           desc="99th percentile of the per-batch time of each pipeline stage (all models).", lo=0, w=8),
        ts("Processing time p50 per stage", "s", query(f"histogram_quantile(0.5, {STAGES})", "{{stage}}"),
           desc="Median per-batch time of each stage.", lo=0, w=8),
        ts("Batches/s per stage", "ops",
           query(f"sum by (stage) (rate(driftwarden_processing_seconds_count[{RI}]))", "{{stage}}"),
           desc="How often each stage runs: decode and window per poll with records, evaluate on its timer.",
           lo=0, w=8),
    ]
    windows = [
        ts("Windows judged and failed", "short",
           *queries((f"sum(increase(driftwarden_windows_total{{{M}}}[{RI}]))", "judged"),
                    (f"sum(increase(driftwarden_window_failures_total{{{M}}}[{RI}]))", "failed")),
           desc="Windows closed per interval, and those whose judgement raised (see /windows for the reason).",
           lo=0, bars=True),
        ts("Label delay quantiles", "s",
           *[query(f"histogram_quantile({qq}, sum by (le) (rate(driftwarden_label_delay_seconds_bucket{{{M}}}[{RI}])))",
                   f"p{int(qq * 100)}", ref) for qq, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))],
           desc="Event-time delay from a prediction to its label."),
    ]
    return with_rows(d, [("Summary", glance), ("Streams", streams), ("Data quality", quality), ("Kafka", kafka),
                         ("Processing", processing), ("Windows", windows)])
