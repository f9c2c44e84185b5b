"""What every driftwarden dashboard shares: the `${datasource}` Prometheus variable, the `$model`
variable, links between the dashboards, and small typed panel helpers over the Grafana
Foundation SDK builders (so each dashboard module reads as a list of queries)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, statushistory, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
M = 'model="$model"'
RI = "$__rate_interval"
TAG = "driftwarden"
# label_values() of a counter every configured model exports from the start (at 0, see
# agent/outputs/metrics.py); "unknown" holds records whose model could not be read: not a model.
MODEL_QUERY = 'label_values(driftwarden_events_total{model!="unknown"}, model)'
LEGEND = (cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM)
          .show_legend(True).calcs([]))
TABLE_LEGEND = (cb.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.RIGHT).show_legend(True).calcs(["lastNotNull", "max"]))
TOOLTIP = cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
HIDDEN = {"Time": True, "__name__": True, "instance": True, "job": True, "model": True}

Panel = Any  # any panel builder of the SDK


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def queries(*specs: tuple[str, str]) -> list[prometheus.Dataquery]:
    """``(expr, legend)`` pairs as queries A, B, C, ..."""
    return [query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(specs)]


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


def ts(title: str, unit: str, *qs: prometheus.Dataquery, desc: str = "", w: int = 12, h: int = 8,
       lo: float | None = None, hi: float | None = None, stack: bool = False, bars: bool = False,
       log: bool = False, table_legend: bool = False, no_value: str | None = None) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h)
         .legend(TABLE_LEGEND if table_legend else LEGEND).tooltip(TOOLTIP).line_width(1).fill_opacity(10))
    if lo is not None:
        p = p.min(lo)
    if hi is not None:
        p = p.max(hi)
    if stack:
        p = p.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(40)
    if bars:
        p = p.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    if log:
        p = p.scale_distribution(cb.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10))
    if no_value is not None:
        p = p.no_value(no_value)
    for q in qs:
        p = p.with_target(q)
    return p


def single(title: str, expr: str, unit: str = "short", desc: str = "", w: int = 4, h: int = 4,
           steps: Sequence[tuple[float | None, str]] | None = None, graph: bool = True,
           decimals: float | None = None) -> stat.Panel:
    p = (stat.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .graph_mode(common.BigValueGraphMode.AREA if graph else common.BigValueGraphMode.NONE)
         .color_mode(common.BigValueColorMode.VALUE if steps else common.BigValueColorMode.NONE)
         .with_target(query(expr)))
    if steps:
        p = p.thresholds(thresholds(*steps))
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def retraining_stats() -> list[Panel]:
    """The model's retraining at a glance (overview and incidents dashboards): a job running now,
    and the promoted registry version."""
    return [single("Retraining job running", f"max(driftwarden_retrain_job_running{{{M}}})",
                   desc="1 while a retraining job of this model is pending or running (one at most per model).",
                   steps=[(None, "text"), (1, "blue")], graph=False),
            single("Promoted version", f"max(driftwarden_model_promoted_version{{{M}}})",
                   desc="The registry version promoted as champion (0: none promoted yet).", graph=False)]


def bars(title: str, expr: str, legend: str, unit: str = "short", desc: str = "", w: int = 8, h: int = 8,
         steps: Sequence[tuple[float | None, str]] | None = None, no_value: str | None = None,
         hi: float | None = None) -> bargauge.Panel:
    """A horizontal bar per series (its last value)."""
    p = (bargauge.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h)
         .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.GRADIENT)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)).min(0)
         .thresholds(thresholds(*(steps or [(None, "blue")])))
         .with_target(query(expr, legend)))
    if hi is not None:
        p = p.max(hi)
    if no_value is not None:
        p = p.no_value(no_value)
    return p


def verdicts(title: str, *qs: prometheus.Dataquery, desc: str = "", w: int = 12, h: int = 8,
             labels: tuple[str, str] = ("no", "yes")) -> statushistory.Panel:
    """0/1 gauges over time: green 0, red 1."""
    p = (statushistory.Panel().title(title).description(desc).datasource(DS).span(w).height(h)
         .show_value(common.VisibilityMode.NEVER).legend(LEGEND).tooltip(TOOLTIP).fill_opacity(80)
         .thresholds(thresholds((None, "green"), (1, "red")))
         .mappings([model.ValueMap(options={"0": model.ValueMappingResult(text=labels[0], color="green"),
                                            "1": model.ValueMappingResult(text=labels[1], color="red")})]))
    for q in qs:
        p = p.with_target(q)
    return p


def latest_table(title: str, *qs: tuple[str, str], desc: str = "", w: int = 12, h: int = 9,
                 hide: Iterable[str] = ()) -> table.Panel:
    """Instant queries (``(expr, column name)``), merged on their labels into one row per series."""
    p = table.Panel().title(title).description(desc).datasource(DS).span(w).height(h).show_header(True)
    rename = {}
    for i, (expr, column) in enumerate(qs):
        ref = chr(ord("A") + i)
        p = p.with_target(query(expr, ref=ref, instant=True))
        rename[f"Value #{ref}" if len(qs) > 1 else "Value"] = column
    if len(qs) > 1:
        p = p.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    return p.with_transformation(model.DataTransformerConfig(id_val="organize", options={
        "excludeByName": {**HIDDEN, **dict.fromkeys(hide, True)}, "renameByName": rename}))


def dashboard(uid: str, title: str, description: str, tags: Sequence[str] = (),
              variables: Sequence[Any] = (), time_from: str = "now-6h") -> dash.Dashboard:
    """A dashboard with the data source and model variables (then ``variables``) and a drop-down
    of links to the other driftwarden dashboards (same model, same time range)."""
    d = (dash.Dashboard(title).uid(uid).tags([TAG, *tags]).description(description)
         .editable().time(time_from, "now").refresh("30s").timezone("browser")
         .tooltip(model.DashboardCursorSync.CROSSHAIR)
         .link(dash.DashboardLink("driftwarden").type(model.DashboardLinkType.DASHBOARDS).tags([TAG])
               .as_dropdown(True).include_vars(True).keep_time(True).target_blank(False))
         .with_variable(dash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
         .with_variable(dash.QueryVariable("model").label("Model").datasource(DS).query(MODEL_QUERY)
                        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)))
    for v in variables:
        d = d.with_variable(v)
    return d


def metric_variable() -> dash.QueryVariable:
    """``$metric``: the performance metrics the model's latest labelled window reports."""
    return (dash.QueryVariable("metric").label("Metric").datasource(DS)
            .query(f'label_values(driftwarden_performance{{{M},segment="all"}}, metric)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))


def with_rows(d: dash.Dashboard, rows: Sequence[tuple[str, Sequence[Panel]]]) -> model.Dashboard:
    """Rows (expanded) of panels, ids numbered in order."""
    ids = iter(range(1, 1000))
    for title, panels in rows:
        row = dash.Row(title).id(next(ids))
        for p in panels:
            row = row.with_panel(p.id(next(ids)))
        d = d.with_row(row.collapsed(False))
    return d.build()
