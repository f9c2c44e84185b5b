"""Build grafana/dashboards/driftwarden.json with Grafana's foundation SDK (dashboards as code).

    python grafana/build_dashboards.py           # write the JSON
    python grafana/build_dashboards.py --check   # exit 1 if the committed JSON is stale

Every query uses only DESIGN.md's metric names and labels, the `${datasource}` Prometheus variable
and the `$model` template variable; tests/integration/test_prometheus.py runs each one against a
real Prometheus that scraped a real agent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statushistory, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards" / "driftwarden.json"
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
M = 'model="$model"'
RI = "$__rate_interval"
LEGEND = (cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM)
          .show_legend(True).calcs([]))
TOOLTIP = cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def ts(title: str, unit: str, *queries: prometheus.Dataquery, desc: str = "", w: int = 12, h: int = 8,
       lo: float | None = None, hi: float | None = None) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h)
         .legend(LEGEND).tooltip(TOOLTIP).line_width(1).fill_opacity(10))
    if lo is not None:
        p = p.min(lo)
    if hi is not None:
        p = p.max(hi)
    for q in queries:
        p = p.with_target(q)
    return p


def single(title: str, expr: str, unit: str = "short", desc: str = "") -> stat.Panel:
    return (stat.Panel().title(title).description(desc).datasource(DS).unit(unit).span(4).height(4)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .graph_mode(common.BigValueGraphMode.AREA).color_mode(common.BigValueColorMode.VALUE)
            .with_target(query(expr)))


def build() -> model.Dashboard:
    ids = iter(range(1, 1000))

    def place(p):  # noqa: ANN001, ANN202 - any panel builder
        return p.id(next(ids))

    d = (dash.Dashboard("driftwarden").uid("driftwarden").tags(["driftwarden", "ml-monitoring"])
         .description("ML monitoring: ingest, data drift, performance, labels and pipeline health, per model.")
         .editable().time("now-6h", "now").refresh("30s").timezone("browser")
         .with_variable(dash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
         .with_variable(dash.QueryVariable("model").label("Model").datasource(DS)
                        .query("label_values(driftwarden_windows_total, model)")
                        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)))

    overview = dash.Row("Overview").id(next(ids))
    for p in [
        single("Events/s", f"sum(rate(driftwarden_events_total{{{M},stream=\"predictions\",outcome=\"ok\"}}[{RI}]))", "reqps",
               "Valid predictions read per second."),
        single("Invalid share", f"sum(rate(driftwarden_events_total{{{M},outcome=\"invalid\"}}[{RI}])) / "
               f"sum(rate(driftwarden_events_total{{{M}}}[{RI}]))", "percentunit",
               "Share of this model's records that broke the message contract (dead-lettered)."),
        single("Windows judged", f"sum(driftwarden_windows_total{{{M}}})"),
        single("Label coverage", f"driftwarden_label_coverage{{{M}}}", "percentunit",
               "Share of the latest labelled window's predictions that have a label."),
        single("Incidents (range)", f"sum(increase(driftwarden_incidents_total{{{M}}}[$__range])) or vector(0)"),
        single("Retraining jobs (range)", f"sum(increase(driftwarden_retrain_jobs_total{{{M}}}[$__range])) or vector(0)"),
        ts("Events/s by outcome", "reqps",
           query(f"sum by (stream, outcome) (rate(driftwarden_events_total{{{M}}}[{RI}]))", "{{stream}} {{outcome}}"),
           desc="Records read per second by stream and outcome (ok, invalid, duplicate, late, expired)."),
        ts("Dead letters/s", "reqps",
           query(f"sum by (topic) (rate(driftwarden_dead_letters_total[{RI}]))", "{{topic}}"),
           query(f"sum by (stream) (rate(driftwarden_events_total{{model=\"unknown\",outcome=\"invalid\"}}[{RI}]))",
                 "unattributable ({{stream}})", "B"),
           desc="Records sent to <topic>.dlq (all models), and those whose model could not be read."),
        ts("Consumer lag", "short",
           query("sum by (topic, partition) (driftwarden_consumer_lag)", "{{topic}}/{{partition}}"),
           desc="Records behind the end of each assigned partition (all models share the topics)."),
        ts("Labels waiting for their prediction", "short",
           query(f"driftwarden_join_pending_labels{{{M}}}", "pending labels"),
           query(f"rate(driftwarden_unlabelled_predictions_total{{{M}}}[{RI}])", "unlabelled predictions/s", "B")),
    ]:
        overview = overview.with_panel(place(p))

    drift = dash.Row("Data drift").id(next(ids))
    feature_table = (
        table.Panel().title("Feature drift (latest window)").datasource(DS).span(12).height(9).show_header(True)
        .description("Per feature: the drift statistic of each method, the adjusted p-value of the verdict test "
                     "and the verdict (significance and effect size).")
        .with_target(query(f"driftwarden_feature_drift_score{{{M}}}", ref="A", instant=True))
        .with_target(query(f"driftwarden_feature_drift_pvalue{{{M}}}", ref="B", instant=True))
        .with_target(query(f"driftwarden_feature_drift_detected{{{M}}}", ref="C", instant=True))
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(model.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "__name__": True, "instance": True, "job": True, "model": True},
            "renameByName": {"Value #A": "statistic", "Value #B": "p-value", "Value #C": "drifted"}}))
    )
    detected = (
        statushistory.Panel().title("Drifted features over time").datasource(DS).span(12).height(9)
        .show_value(common.VisibilityMode.NEVER).legend(LEGEND).tooltip(TOOLTIP).fill_opacity(80)
        .description("1 = the feature drifted in the latest judged window.")
        .with_target(query(f"max by (feature) (driftwarden_feature_drift_detected{{{M}}})", "{{feature}}"))
        .thresholds(dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps([
            model.Threshold(value=None, color="green"), model.Threshold(value=1, color="red")]))
    )
    for p in [
        ts("Dataset drift share", "percentunit", query(f"driftwarden_dataset_drift_share{{{M}}}", "share of features drifted"),
           desc="Share of features whose drift verdict is positive in the latest window.", lo=0, hi=1),
        ts("Prediction drift", "short", query(f"driftwarden_prediction_drift_score{{{M}}}", "{{method}}"),
           desc="Drift of the model output (score) against the reference."),
        feature_table,
        detected,
        ts("Feature drift score", "short", query(f"driftwarden_feature_drift_score{{{M}}}", "{{feature}} ({{method}})"), w=24),
        ts("Schema violations/s", "reqps",
           query(f"sum by (feature, kind) (rate(driftwarden_schema_violations_total{{{M}}}[{RI}]))", "{{feature}} {{kind}}")),
        ts("Value skew/s", "reqps",
           query(f"sum by (feature, kind) (rate(driftwarden_value_skew_total{{{M}}}[{RI}]))", "{{feature}} {{kind}}")),
    ]:
        drift = drift.with_panel(place(p))

    perf = dash.Row("Performance").id(next(ids))
    seg_table = (
        table.Panel().title("Performance by segment (latest labelled window)").datasource(DS).span(12).height(9)
        .show_header(True)
        .with_target(query(f"driftwarden_performance{{{M}}}", instant=True))
        .with_transformation(model.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "__name__": True, "instance": True, "job": True, "model": True},
            "renameByName": {"Value": "value"}}))
    )
    concept = (
        statushistory.Panel().title("Concept drift and label shift").datasource(DS).span(12).height(8)
        .description("1 = the detector fired on the error stream of the last settled window (DDM, EDDM, ADWIN, "
                     "Page-Hinkley, KSWIN, conditional test), or the class priors moved (label shift).")
        .show_value(common.VisibilityMode.NEVER).legend(LEGEND).tooltip(TOOLTIP).fill_opacity(80)
        .with_target(query(f"max by (detector) (driftwarden_concept_drift_detected{{{M}}})", "{{detector}}"))
        .with_target(query(f"driftwarden_label_shift_detected{{{M}}}", "label shift", "B"))
        .thresholds(dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps([
            model.Threshold(value=None, color="green"), model.Threshold(value=1, color="red")]))
    )
    for p in [
        ts("ROC AUC by segment", "short",
           query(f"driftwarden_performance{{{M},metric=\"roc_auc\"}}", "{{segment}}"),
           desc="Realized ROC AUC of the latest labelled window, overall (all) and per segment.", hi=1),
        ts("Estimated vs realized ROC AUC", "short",
           query(f"driftwarden_estimated_performance{{{M},metric=\"roc_auc\"}}", "estimated (label-free)"),
           query(f"driftwarden_performance{{{M},metric=\"roc_auc\",segment=\"all\"}}", "realized", "B"),
           query(f"driftwarden_performance_lower{{{M},metric=\"roc_auc\",segment=\"all\"}}", "realized, 95% lower", "C"),
           query(f"driftwarden_performance_upper{{{M},metric=\"roc_auc\",segment=\"all\"}}", "realized, 95% upper", "D"),
           desc="The label-free estimate runs ahead of the labels; the realized value (with its 95% interval) "
                "follows once they arrive.", hi=1),
        seg_table,
        ts("Label coverage", "percentunit", query(f"driftwarden_label_coverage{{{M}}}", "coverage"),
           query(f"driftwarden_performance_provisional{{{M}}}", "provisional (labels still coming)", "B"), lo=0, hi=1,
           desc="Share of the latest labelled window's predictions that have their label; low coverage weakens "
                "the performance panels."),
        concept,
        ts("Error rate: realized vs expected", "percentunit",
           query(f"driftwarden_error_rate{{{M}}}", "{{kind}}"),
           desc="Realized error rate of the last settled window against the rate expected under the reference "
                "relation P(y|x): realized above expected while inputs are stable points to concept drift.", lo=0),
    ]:
        perf = perf.with_panel(place(p))

    latency = dash.Row("Latency").id(next(ids))
    delay = f"sum by (le) (rate(driftwarden_label_delay_seconds_bucket{{{M}}}[{RI}]))"
    for p in [
        ts("Label delay quantiles", "s",
           *[query(f"histogram_quantile({qq}, {delay})", f"p{int(qq * 100)}", ref) for qq, ref in
             ((0.5, "A"), (0.9, "B"), (0.99, "C"))],
           desc="Event-time delay from a prediction to its label."),
        ts("Processing time p99 per stage", "s",
           query(f"histogram_quantile(0.99, sum by (stage, le) (rate(driftwarden_processing_seconds_bucket[{RI}])))",
                 "{{stage}}"),
           desc="Per-batch time of each pipeline stage (all models)."),
    ]:
        latency = latency.with_panel(place(p))

    for row in (overview, drift, perf, latency):
        d = d.with_row(row.collapsed(False))
    return d.build()


def _grafana_layout(obj: dict) -> dict:
    """What Grafana itself stores: an expanded row keeps no panels; they follow it at the top level."""
    flat = []
    for p in obj["panels"]:
        children = p.get("panels", []) if p["type"] == "row" and not p.get("collapsed") else []
        if children:
            p = {**p, "panels": []}
        flat.append(p)
        flat.extend(children)
    return {**obj, "panels": flat}


def render() -> str:
    obj = _grafana_layout(json.loads(JSONEncoder().encode(build())))
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON differs from the generated one")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python grafana/build_dashboards.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
