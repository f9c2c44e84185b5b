"""driftwarden (uid ``driftwarden``): one model at a glance. Traffic, drift, realized against
estimated performance, open incidents and retraining; each row has a dashboard of its own."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from .common import M, RI, retraining_stats, dashboard, metric_variable, queries, query, single, ts, verdicts, with_rows

UID = "driftwarden"


def build() -> model.Dashboard:
    d = dashboard(UID, "driftwarden", "ML monitoring of one model: traffic, data drift, realized and estimated "
                  "performance, incidents and retraining. The other driftwarden dashboards drill into each row.",
                  tags=["ml-monitoring", "overview"], variables=[metric_variable()])
    glance = [
        single("Predictions/s", f"sum(rate(driftwarden_events_total{{{M},stream=\"predictions\",outcome=\"ok\"}}[{RI}]))",
               "reqps", "Valid predictions read per second."),
        single("Labels/s", f"sum(rate(driftwarden_events_total{{{M},stream=\"labels\",outcome=\"ok\"}}[{RI}]))",
               "reqps", "Labels joined to their prediction per second."),
        single("Dataset drift share", f"max(driftwarden_dataset_drift_share{{{M}}})", "percentunit",
               "Share of features that drifted in the latest judged window.",
               steps=[(None, "green"), (0.3, "orange"), (0.5, "red")]),
        single("Open incidents", f"sum(driftwarden_incidents_open{{{M}}})", desc="Incidents of this model open now "
               "(the agent's own rules and Alertmanager alerts).", steps=[(None, "green"), (1, "red")]),
        *retraining_stats(),
    ]
    traffic = [
        ts("Events/s by stream and outcome", "reqps",
           query(f"sum by (stream, outcome) (rate(driftwarden_events_total{{{M}}}[{RI}]))", "{{stream}} {{outcome}}"),
           desc="Records read per second: ok, invalid (dead-lettered), duplicate, late (predictions), expired (labels)."),
        ts("Invalid share", "percentunit",
           query(f"sum by (stream) (rate(driftwarden_events_total{{{M},outcome=\"invalid\"}}[{RI}])) / "
                 f"clamp_min(sum by (stream) (rate(driftwarden_events_total{{{M}}}[{RI}])), 1e-9)", "invalid {{stream}}"),
           desc="Share of this model's records that broke the message contract (each one is in <topic>.dlq). "
                "DriftwardenDeadLetters fires above 1%.", lo=0),
    ]
    drift = [
        ts("Dataset drift share over time", "percentunit", query(f"driftwarden_dataset_drift_share{{{M}}}", "share of features drifted"),
           desc="Share of features whose drift verdict (significance and effect size) is positive in the latest "
                "window.", lo=0, hi=1),
        ts("Drifted features and prediction drift", "short",
           *queries((f"sum(driftwarden_feature_drift_detected{{{M}}})", "features drifted"),
                    (f"driftwarden_prediction_drift_score{{{M}}}", "prediction drift ({{method}})")),
           desc="How many features drifted in the latest window, and the drift of the model's output. Per feature: "
                "the feature drift dashboard.", lo=0),
    ]
    perf = [
        ts("Realized vs estimated: $metric", "short",
           *queries((f"driftwarden_performance{{{M},metric=\"$metric\",segment=\"all\"}}", "realized"),
                    (f"driftwarden_performance_lower{{{M},metric=\"$metric\",segment=\"all\"}}", "realized, 95% lower"),
                    (f"driftwarden_performance_upper{{{M},metric=\"$metric\",segment=\"all\"}}", "realized, 95% upper"),
                    (f"driftwarden_estimated_performance{{{M},metric=\"$metric\"}}", "estimated (label-free)")),
           desc="The label-free estimate (CBPE) covers each window as soon as it closes; the realized value, with its "
                "95% interval, follows as labels arrive. Estimated high while realized falls: P(y|x) moved, which "
                "CBPE cannot see."),
        ts("Label coverage", "percentunit",
           *queries((f"driftwarden_label_coverage{{{M}}}", "coverage"),
                    (f"driftwarden_performance_provisional{{{M}}}", "provisional (labels still coming)")),
           desc="Share of the latest labelled window's predictions that have their label.", lo=0, hi=1),
    ]
    incidents = [
        ts("Open incidents by kind", "short",
           query(f"sum by (kind, severity) (driftwarden_incidents_open{{{M}}})", "{{kind}} ({{severity}})"),
           desc="Incidents open now, by kind and severity; details, causes and jobs: the incidents and retraining "
                "dashboard.", lo=0, stack=True),
        verdicts("Concept drift detectors", query(f"max by (detector) (driftwarden_concept_drift_detected{{{M}}})",
                                                 "{{detector}}"),
                 desc="1 = the detector fired on the error stream of the last settled window.", w=6),
        ts("Retraining jobs", "short",
           *queries((f"sum by (status) (driftwarden_retrain_jobs_total{{{M}}})", "{{status}}"),
                    (f"max(driftwarden_retrain_job_running{{{M}}})", "running now")),
           desc="Jobs of this model since it was first retrained: started, then succeeded, failed or rejected "
                "(healthy but not better than the champion).", w=6, lo=0),
    ]
    return with_rows(d, [("Overview", glance), ("Traffic", traffic), ("Data drift", drift), ("Performance", perf),
                         ("Incidents and retraining", incidents)])
