"""driftwarden: performance by segment (uid ``driftwarden-performance``): the realized metric of the
latest labelled window overall and per segment (and pair) with its 95% interval, the label-free
estimate, label coverage and delay, and the concept-drift signals."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from .common import M, RI, dashboard, latest_table, metric_variable, queries, query, single, ts, verdicts, with_rows

UID = "driftwarden-performance"
PM = f'{M},metric="$metric"'


def build() -> model.Dashboard:
    d = dashboard(UID, "driftwarden: performance by segment", "Realized performance of the latest labelled window, "
                  "overall and per segment (each value of a configured segment column, and pairs), with 95% "
                  "intervals; the label-free estimate; labels and concept drift.", tags=["performance"],
                  variables=[metric_variable()])
    glance = [
        single("Realized $metric", f"max(driftwarden_performance{{{PM},segment=\"all\"}})",
               desc="Whole latest labelled window.", decimals=3, w=6),
        single("Estimated $metric", f"max(driftwarden_estimated_performance{{{PM}}})",
               desc="Label-free estimate (CBPE) of the latest closed window.", decimals=3, w=6),
        single("Label coverage", f"max(driftwarden_label_coverage{{{M}}})", "percentunit",
               "Share of the latest labelled window's predictions with a label.",
               steps=[(None, "red"), (0.5, "orange"), (0.8, "green")], w=6),
        single("Segments reported", f"count(driftwarden_performance{{{PM},segment!=\"all\"}})",
               desc="Segments and segment pairs with enough support to be reported.", graph=False, w=6),
    ]
    overall = [
        ts("Realized vs estimated: $metric", "short",
           *queries((f"driftwarden_performance{{{PM},segment=\"all\"}}", "realized"),
                    (f"driftwarden_performance_lower{{{PM},segment=\"all\"}}", "realized, 95% lower"),
                    (f"driftwarden_performance_upper{{{PM},segment=\"all\"}}", "realized, 95% upper"),
                    (f"driftwarden_estimated_performance{{{PM}}}", "estimated (label-free)")),
           desc="The realized value (95% interval) follows the labels; the estimate runs ahead of them."),
        ts("Error rate: realized vs expected", "percentunit", query(f"driftwarden_error_rate{{{M}}}", "{{kind}}"),
           desc="Error rate of the last settled window against the rate expected under the reference relation "
                "P(y|x): realized above expected while inputs are stable points to concept drift.", lo=0),
    ]
    segments = [
        ts("$metric by segment", "short", query(f"driftwarden_performance{{{PM}}}", "{{segment}}"),
           desc="Realized value per segment of the latest labelled window (\"all\": the whole window).", w=24, h=10,
           table_legend=True),
        latest_table("$metric by segment (latest labelled window)",
                     (f"driftwarden_performance{{{PM}}}", "value"),
                     (f"driftwarden_performance_lower{{{PM}}}", "95% lower"),
                     (f"driftwarden_performance_upper{{{PM}}}", "95% upper"),
                     desc="Each segment's value with its 95% interval; a segment whose interval lies apart from "
                          "\"all\" differs for real.", hide=["metric"]),
        ts("Gap to the whole window: $metric", "short",
           query(f"driftwarden_performance{{{PM},segment!=\"all\"}} - ignoring (segment) group_left "
                 f"driftwarden_performance{{{PM},segment=\"all\"}}", "{{segment}}"),
           desc="Segment minus overall: the segments that pull the model down (negative for metrics where "
                "higher is better; positive for losses and errors).", table_legend=True, h=9),
    ]
    labels = [
        ts("Label coverage over time", "percentunit",
           *queries((f"driftwarden_label_coverage{{{M}}}", "coverage"),
                    (f"driftwarden_performance_provisional{{{M}}}", "provisional (labels still coming)")),
           desc="Share of the latest labelled window's predictions that have their label; until min_coverage the "
                "window is provisional.", lo=0, hi=1, w=8),
        ts("Label delay quantiles", "s",
           *[query(f"histogram_quantile({qq}, sum by (le) (rate(driftwarden_label_delay_seconds_bucket{{{M}}}[{RI}])))",
                   f"p{int(qq * 100)}", ref) for qq, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))],
           desc="Event-time delay from a prediction to its label.", w=8),
        ts("Labels waiting and unlabelled", "short",
           *queries((f"driftwarden_join_pending_labels{{{M}}}", "labels waiting for their prediction"),
                    (f"rate(driftwarden_unlabelled_predictions_total{{{M}}}[{RI}])", "unlabelled predictions/s")),
           desc="Labels that came before their prediction; predictions whose window left retention unlabelled.",
           w=8, lo=0),
    ]
    concept = [
        verdicts("Concept drift and label shift",
                 query(f"max by (detector) (driftwarden_concept_drift_detected{{{M}}})", "{{detector}}"),
                 query(f"driftwarden_label_shift_detected{{{M}}}", "label shift", "B"),
                 desc="1 = the detector fired on the error stream of the last settled window (ADWIN, DDM, "
                      "Page-Hinkley, ...; conditional: performance fell while inputs stayed), or the class priors "
                      "moved (label shift)."),
        ts("Concept-drift detections", "short",
           query(f"sum by (detector) (increase(driftwarden_concept_drifts_total{{{M}}}[{RI}]))", "{{detector}}"),
           desc="Detections by each concept-drift detector per interval.", lo=0, bars=True),
    ]
    return with_rows(d, [("Summary", glance), ("Overall", overall), ("Segments", segments), ("Labels", labels),
                         ("Concept drift", concept)])
