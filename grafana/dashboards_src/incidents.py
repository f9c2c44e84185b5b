"""driftwarden: incidents and retraining (uid ``driftwarden-incidents``): what is open and why (the
causes the root-cause analyses name), how the analyses go, and the retraining jobs with the
version they promoted."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from .common import M, RI, retraining_stats, bars, dashboard, queries, query, single, ts, with_rows

UID = "driftwarden-incidents"


def build() -> model.Dashboard:
    d = dashboard(UID, "driftwarden: incidents and retraining", "Incidents (the agent's own rules and Alertmanager "
                  "alerts), the causes their root-cause analyses name, and the retraining jobs they launch.",
                  tags=["incidents", "retraining"], time_from="now-24h")
    glance = [
        single("Open incidents", f"sum(driftwarden_incidents_open{{{M}}})", desc="Incidents of this model open now.",
               steps=[(None, "green"), (1, "orange")]),
        single("Critical open", f"sum(driftwarden_incidents_open{{{M},severity=\"critical\"}})",
               desc="Open incidents at critical severity (DriftwardenCriticalIncident pages after 5 minutes).",
               steps=[(None, "green"), (1, "red")]),
        single("Incidents opened (range)", f"sum(increase(driftwarden_incidents_total{{{M}}}[$__range]))",
               desc="Incidents opened over the dashboard's time range.", decimals=0),
        single("Analyses failed (range)", f"sum(increase(driftwarden_rca_seconds_count{{{M},status=\"failed\"}}[$__range]))",
               desc="Root-cause analyses that failed over the time range (DriftwardenRCAFailures).",
               steps=[(None, "green"), (1, "red")], decimals=0),
        *retraining_stats(),
    ]
    incidents = [
        ts("Open incidents by kind and severity", "short",
           query(f"sum by (kind, severity) (driftwarden_incidents_open{{{M}}})", "{{kind}} ({{severity}})"),
           desc="Open incidents over time. Kinds: data_drift, data_quality, estimate_drop, traffic_drop, "
                "performance_drop, concept_drift, labels_missing (the agent's rules) and alertmanager.",
           lo=0, stack=True, table_legend=True, w=16),
        bars("Opened by kind (range)", f"sum by (kind) (increase(driftwarden_incidents_total{{{M}}}[$__range]))",
             "{{kind}}", desc="Incidents opened over the time range, by kind."),
    ]
    rca = [
        bars("Named root causes (open incidents)", f"max by (cause) (driftwarden_rca_cause{{{M}}})", "{{cause}}",
             "percentunit", "Confidence of each cause the analyses of the open incidents name (data_quality, "
             "covariate_shift, concept_drift, label_shift, label_noise, underrepresented_segment). Empty while "
             "no open incident has a finished analysis.", w=12, hi=1, no_value="no open incident names a cause",
             steps=[(None, "blue"), (0.5, "orange"), (0.8, "red")]),
        ts("Root causes over time", "percentunit",
           query(f"max by (cause) (driftwarden_rca_cause{{{M}}})", "{{cause}}"),
           desc="The named causes' confidence while their incidents are open.", lo=0, hi=1, w=12,
           no_value="no open incident names a cause"),
        ts("Analyses by outcome", "short",
           query(f"sum by (status) (increase(driftwarden_rca_seconds_count{{{M}}}[{RI}]))", "{{status}}"),
           desc="Root-cause analyses finished per interval: done or failed.", lo=0, bars=True),
        ts("Analysis duration", "s",
           *[query(f"histogram_quantile({qq}, sum by (le) (rate(driftwarden_rca_seconds_bucket{{{M}}}[$__range])))",
                   f"p{int(qq * 100)}", ref) for qq, ref in ((0.5, "A"), (0.9, "B"))],
           desc="Time the analyses over the time range took (off the hot path; retained window rows against the "
                "reference).", lo=0, no_value="no analysis in the time range"),
    ]
    retrain = [
        bars("Jobs by status (range)", f"sum by (status) (increase(driftwarden_retrain_jobs_total{{{M}}}[$__range]))",
             "{{status}}", desc="Jobs started over the time range and how they ended: succeeded, failed, or rejected "
             "(healthy, but not better than the champion on the holdout)."),
        ts("Jobs by status", "short",
           *queries((f"sum by (status) (driftwarden_retrain_jobs_total{{{M}}})", "{{status}}"),
                    (f"max(driftwarden_retrain_job_running{{{M}}})", "running now")),
           desc="Every job of this model so far (records are kept: the counts only grow).", lo=0, w=8),
        ts("Promoted version over time", "short", query(f"max(driftwarden_model_promoted_version{{{M}}})", "promoted version"),
           desc="The champion's registry version; a step up is a promotion.", lo=0, w=8),
    ]
    return with_rows(d, [("Summary", glance), ("Incidents", incidents), ("Root-cause analysis", rca),
                         ("Retraining", retrain)])
