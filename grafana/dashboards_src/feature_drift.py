"""driftwarden: feature drift (uid ``driftwarden-feature-drift``): per feature, the verdict and every
drift statistic of the latest judged windows over time, and the feature-level data quality."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from .common import M, RI, dashboard, latest_table, query, single, ts, verdicts, with_rows

UID = "driftwarden-feature-drift"


def score(method: str, title: str, desc: str) -> object:
    return ts(title, "short", query(f"driftwarden_feature_drift_score{{{M},method=\"{method}\"}}", "{{feature}}"),
              desc=desc, lo=0, table_legend=True)


def build() -> model.Dashboard:
    d = dashboard(UID, "driftwarden: feature drift", "Data drift per feature against the reference: the verdict "
                  "(Benjamini-Hochberg-adjusted p-value below alpha and effect size above the floor) and each "
                  "statistic of every judged window.", tags=["drift"])
    glance = [
        single("Features drifted", f"sum(driftwarden_feature_drift_detected{{{M}}})",
               desc="Features whose verdict is positive in the latest judged window.",
               steps=[(None, "green"), (1, "orange")], w=6),
        single("Dataset drift share", f"max(driftwarden_dataset_drift_share{{{M}}})", "percentunit",
               "Share of features drifted in the latest judged window.",
               steps=[(None, "green"), (0.3, "orange"), (0.5, "red")], w=6),
        single("Latest judged window", f"max(driftwarden_window_id{{{M}}})", desc="Sequence number of the window "
               "these verdicts describe.", graph=False, w=6),
        single("Windows judged/h", f"sum(rate(driftwarden_windows_total{{{M}}}[{RI}])) * 3600",
               desc="Windows closed and judged per hour: how often the verdicts change.", w=6),
    ]
    verdict = [
        verdicts("Drift verdict per feature", query(f"max by (feature) (driftwarden_feature_drift_detected{{{M}}})",
                                                   "{{feature}}"),
                 desc="Red: the feature drifted in the latest judged window at that time.", w=24, h=9,
                 labels=("stable", "drifted")),
        latest_table("Feature drift (latest window)",
                     (f"driftwarden_feature_drift_score{{{M},method=~\"ks|chi2\"}}", "statistic"),
                     (f"driftwarden_feature_drift_pvalue{{{M}}}", "adjusted p-value"),
                     (f"driftwarden_feature_drift_detected{{{M}}}", "drifted"),
                     desc="Per feature: the verdict test's statistic (KS for numeric, chi-square for categorical "
                          "features), its adjusted p-value and the verdict.", w=12, hide=["test"]),
        ts("Adjusted p-value of the verdict test", "short",
           query(f"driftwarden_feature_drift_pvalue{{{M}}}", "{{feature}} ({{test}})"),
           desc="Benjamini-Hochberg-adjusted p-value per feature (log scale): below alpha counts only with an "
                "effect size above the floor.", w=12, h=9, log=True, table_legend=True),
    ]
    scores = [
        ts("Verdict test statistic", "short",
           query(f"driftwarden_feature_drift_score{{{M},method=~\"ks|chi2\"}}", "{{feature}} ({{method}})"),
           desc="Kolmogorov-Smirnov statistic (numeric) or chi-square statistic (categorical) of each window.",
           lo=0, table_legend=True),
        score("psi", "Population stability index", "PSI of each feature against the reference bins (0.1: moderate, "
              "0.25: large shift)."),
        score("js", "Jensen-Shannon distance", "Jensen-Shannon distance of each feature's binned distribution."),
        score("hellinger", "Hellinger distance", "Hellinger distance of each feature's binned distribution."),
        score("wasserstein", "Wasserstein distance (numeric)", "Wasserstein distance of numeric features, in "
              "reference standard deviations: the effect size of their verdict."),
        ts("Prediction drift", "short", query(f"driftwarden_prediction_drift_score{{{M}}}", "{{method}}"),
           desc="Drift of the model output (score or class) against the reference predictions.", lo=0),
    ]
    quality = [
        ts("Schema violations/s per feature", "reqps",
           query(f"sum by (feature, kind) (rate(driftwarden_schema_violations_total{{{M}}}[{RI}]))", "{{feature}} {{kind}}"),
           desc="Values missing, of the wrong type, or keys the reference does not know (unexpected).", lo=0,
           table_legend=True),
        ts("Value skew/s per feature", "reqps",
           query(f"sum by (feature, kind) (rate(driftwarden_value_skew_total{{{M}}}[{RI}]))", "{{feature}} {{kind}}"),
           desc="Training-serving skew: values out of the reference range, unseen categories, nulls.", lo=0,
           table_legend=True),
    ]
    return with_rows(d, [("Summary", glance), ("Verdicts", verdict), ("Statistics", scores),
                         ("Data quality per feature", quality)])
