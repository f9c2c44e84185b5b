"""The files a user deploys beside the agent: Prometheus config and rules, Alertmanager config,
the Grafana dashboards and their provisioning. Checked with the tools that will load them (promtool,
amtool, Grafana's foundation SDK) and for the contracts between them: job names, the webhook and
its token, metric names the agent really exports, a sane panel grid."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import find_binary

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules.yml"
RULES_TEST = PROM_DIR / "rules_test.yml"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "grafana"
REQUIRED_ALERTS = {"DriftwardenFeatureDrift", "DriftwardenPerformanceDrop", "DriftwardenDeadLetters",
                   "DriftwardenConsumerLag", "DriftwardenDown"}
# on the agent's own work and its input streams (issue #19)
OPERATIONAL_ALERTS = {"DriftwardenCriticalIncident", "DriftwardenRCAFailures", "DriftwardenRetrainingFailing",
                      "DriftwardenPredictionTrafficDrop", "DriftwardenPredictionTrafficStopped",
                      "DriftwardenLabelsMissing"}
WEBHOOK = "http://driftwarden:9108/alerts"


def tool(name: str, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = find_binary(name, install="apt-get install -y prometheus prometheus-alertmanager")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd)


def exported_metrics() -> set[str]:
    """Metric family names the agent registers (agent/outputs/metrics.py spells each one out)."""
    return set(re.findall(r'"(driftwarden_[a-z_]+)"', (ROOT / "agent" / "outputs" / "metrics.py").read_text()))


def referenced_metrics(promql: str) -> set[str]:
    names = set(re.findall(r"\b(driftwarden_[a-z_]+)\b", promql))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


# -- Prometheus --------------------------------------------------------------------------------

def test_promtool_check_rules() -> None:
    res = tool("promtool", "check", "rules", RULES)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    res = tool("promtool", "test", "rules", RULES_TEST.name, cwd=PROM_DIR)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_promtool_check_config() -> None:
    res = tool("promtool", "check", "config", PROM_CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr


def test_required_alerts_have_severity_model_and_annotations() -> None:
    rules = alerts()
    assert REQUIRED_ALERTS | OPERATIONAL_ALERTS <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "for" in rule, f"{name} would page on a single evaluation"


def test_every_alert_is_unit_tested_both_ways() -> None:
    """Each alert is shown firing and quiet by rules_test.yml, and every alert it fires carries
    `model` and `severity` (promtool compares the full label set, so this is what fires)."""
    doc = yaml.safe_load(RULES_TEST.read_text())
    assert doc["rule_files"] == [RULES.name]
    fires, quiet = set(), set()
    for case in doc["tests"]:
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
            for exp in t.get("exp_alerts", []):
                assert {"model", "severity"} <= set(exp["exp_labels"]), (t["alertname"], exp["exp_labels"])
    assert set(alerts()) <= fires, f"never shown firing: {set(alerts()) - fires}"
    assert set(alerts()) <= quiet, f"never shown quiet: {set(alerts()) - quiet}"


def test_per_model_alerts_aggregate_to_the_model() -> None:
    """The new alerts sum over replicas (instance, job) and label values (outcome, status): each
    fires once per model, with the model label the Alertmanager route groups by."""
    rules = alerts()
    for name in OPERATIONAL_ALERTS:
        expr = " ".join(rules[name]["expr"].split())
        assert re.search(r"(sum|max) by \(model\b", expr), (name, expr)
        assert "model" not in rules[name]["labels"], name


def test_rules_use_only_exported_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text())
    used = set().union(*(referenced_metrics(r["expr"]) for g in doc["groups"] for r in g["rules"]))
    assert used and used <= exported_metrics(), used - exported_metrics()


def test_prometheus_config_matches_rules_and_alertmanager() -> None:
    cfg = yaml.safe_load(PROM_CONFIG.read_text())
    assert cfg["rule_files"] == [RULES.name]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["driftwarden"].get("metrics_path", "/metrics") == "/metrics"
    assert 'job="driftwarden"' in alerts()["DriftwardenDown"]["expr"]
    targets = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


# -- Alertmanager ------------------------------------------------------------------------------

def test_amtool_check_config() -> None:
    res = tool("amtool", "check-config", AM_CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("alertname,receiver", [
    ("DriftwardenFeatureDrift", "driftwarden"), ("DriftwardenPerformanceDrop", "driftwarden"),
    ("DriftwardenPredictionTrafficDrop", "driftwarden"), ("DriftwardenLabelsMissing", "driftwarden"),
    # about the agent itself: to a person, or they would loop back into incidents and jobs
    ("DriftwardenDown", "oncall"), ("DriftwardenCriticalIncident", "oncall"), ("DriftwardenRCAFailures", "oncall"),
    ("DriftwardenRetrainingFailing", "oncall")])
def test_amtool_routes_each_alert_to_its_receiver(alertname: str, receiver: str) -> None:
    res = tool("amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}", f"alertname={alertname}",
               "model=car-loan")
    assert res.returncode == 0 and res.stdout.strip() == receiver, (alertname, res.stdout, res.stderr)


def test_alertmanager_routes_model_alerts_to_the_agent_with_a_token_file() -> None:
    cfg = yaml.safe_load(AM_CONFIG.read_text())
    route = cfg["route"]
    assert "model" in route["group_by"] and "alertname" in route["group_by"]
    receivers = {r["name"]: r for r in cfg["receivers"]}
    (hook,) = receivers[route["receiver"]]["webhook_configs"]
    assert hook["url"] == WEBHOOK
    auth = hook["http_config"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    assert auth["credentials_file"].startswith("/") and "credentials" not in auth  # never inline
    # model alerts are not diverted away from the agent by a sub-route
    for sub in route.get("routes", []):
        for name in REQUIRED_ALERTS - {"DriftwardenDown"}:
            assert not any(re.search(m.split("=~", 1)[-1].strip('"'), name) for m in sub.get("matchers", [])
                           if m.startswith("alertname")), (name, sub)


# -- Grafana -----------------------------------------------------------------------------------

DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
UIDS = {"driftwarden", "driftwarden-feature-drift", "driftwarden-performance", "driftwarden-incidents",
        "driftwarden-pipeline"}
# agent-wide families: no model label, so their panels cannot filter by $model
AGENT_WIDE = {"driftwarden_consumer_lag", "driftwarden_processing_seconds", "driftwarden_dead_letters"}
SECTIONS = {
    "driftwarden": {"Overview", "Traffic", "Data drift", "Performance", "Incidents and retraining"},
    "driftwarden-feature-drift": {"Verdicts", "Statistics", "Data quality per feature"},
    "driftwarden-performance": {"Overall", "Segments", "Labels", "Concept drift"},
    "driftwarden-incidents": {"Incidents", "Root-cause analysis", "Retraining"},
    "driftwarden-pipeline": {"Streams", "Data quality", "Kafka", "Processing", "Windows"},
}
# what each dashboard must show, as metrics its queries use
COVERS = {
    "driftwarden": {"driftwarden_events_total", "driftwarden_dataset_drift_share", "driftwarden_performance",
                    "driftwarden_estimated_performance", "driftwarden_incidents_open", "driftwarden_retrain_jobs_total"},
    "driftwarden-feature-drift": {"driftwarden_feature_drift_score", "driftwarden_feature_drift_detected",
                                  "driftwarden_feature_drift_pvalue"},
    "driftwarden-performance": {"driftwarden_performance", "driftwarden_performance_lower",
                                "driftwarden_performance_upper", "driftwarden_estimated_performance"},
    "driftwarden-incidents": {"driftwarden_incidents_open", "driftwarden_incidents_total", "driftwarden_rca_cause",
                              "driftwarden_rca_seconds", "driftwarden_retrain_jobs_total",
                              "driftwarden_retrain_job_running", "driftwarden_model_promoted_version"},
    "driftwarden-pipeline": {"driftwarden_dead_letters_total", "driftwarden_schema_violations_total",
                             "driftwarden_value_skew_total", "driftwarden_consumer_lag", "driftwarden_processing_seconds",
                             "driftwarden_window_failures_total"},
}


def build_script() -> Any:
    import sys

    sys.path.insert(0, str(GRAFANA))
    try:
        import build_dashboards
    finally:
        sys.path.remove(str(GRAFANA))
    return build_dashboards


def dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exported(name: str) -> bool:
    """A counter family ``x`` is exposed (and queried) as ``x_total``."""
    names = exported_metrics()
    return name in names or name.removesuffix("_total") in names


def test_every_dashboard_is_generated_from_build_dashboards() -> None:
    script = build_script()
    texts = script.render_all()
    assert sorted(texts) == [p.name for p in DASHBOARDS], "a dashboard JSON without its builder, or the reverse"
    for path in DASHBOARDS:
        assert texts[path.name] == path.read_text(), f"{path.name} is stale: run python grafana/build_dashboards.py"
    assert script.main(["--check"]) == 0


def test_dashboards_identity() -> None:
    uids = [dashboard(p)["uid"] for p in DASHBOARDS]
    assert sorted(uids) == sorted(UIDS) and len(set(uids)) == len(uids)
    # the alerts' annotations link to /d/driftwarden/...: the overview keeps that uid and file name
    assert dashboard(GRAFANA / "dashboards" / "driftwarden.json")["uid"] == "driftwarden"
    titles = [dashboard(p)["title"] for p in DASHBOARDS]
    assert len(set(titles)) == len(titles) and all(t.startswith("driftwarden") for t in titles)
    for r in alerts().values():
        link = r["annotations"].get("dashboard")
        if link:
            assert re.match(r"/d/([\w-]+)/", link).group(1) in UIDS, link


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_round_trips_through_the_sdk_model(path: Path) -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    raw = dashboard(path)
    assert json.loads(JSONEncoder().encode(Dashboard.from_json(raw))) == raw


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_variables(path: Path) -> None:
    d = dashboard(path)
    assert d["title"] and d["tags"][0] == "driftwarden"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    model = variables["model"]
    assert model["type"] == "query"
    assert model["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    q = model["query"]["query"] if isinstance(model["query"], dict) else model["query"]
    assert q.startswith("label_values(driftwarden_events_total") and q.endswith(", model)"), q
    for v in variables.values():
        if v["type"] == "query":  # every query variable reads the chosen data source
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, v["name"]
    # every other driftwarden dashboard is one click away, with the same model and time range
    (link,) = d["links"]
    assert link["type"] == "dashboards" and link["tags"] == ["driftwarden"]
    assert link["includeVars"] and link["keepTime"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panel_ids_unique_and_grid_sane(path: Path) -> None:
    d = dashboard(path)
    ps = panels(d)
    ids = [p["id"] for p in ps]
    assert len(ids) == len(set(ids)), ids
    titles = [p["title"] for p in ps if p["type"] != "row"]
    assert len(titles) == len(set(titles)), titles  # the integration test names panels by title
    cells: dict[tuple[int, int], str] = {}
    for p in ps:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert 0 <= g["x"] and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0 and g["y"] >= 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
    for p in d["panels"]:  # Grafana's layout: an expanded row holds no panels
        if p["type"] == "row" and not p.get("collapsed"):
            assert not p.get("panels"), p["title"]
    rows = [p for p in d["panels"] if p["type"] == "row"]
    assert d["panels"][0]["type"] == "row" and all(r["gridPos"]["w"] == 24 for r in rows)
    assert SECTIONS[d["uid"]] <= {r["title"] for r in rows}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_and_target_uses_the_datasource_variable(path: Path) -> None:
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for p in panels(dashboard(path)):
        if p["type"] == "row":
            continue
        assert p["datasource"] == ref, p["title"]
        assert p["targets"], f"{p['title']!r} has no query"
        assert p.get("description"), f"{p['title']!r} has no description"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == ref, p["title"]
            assert t["expr"].strip(), p["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_use_exported_metrics_and_the_model_variable(path: Path) -> None:
    d = dashboard(path)
    used_here: set[str] = set()
    variables = {v["name"] for v in d["templating"]["list"]} | {"__rate_interval", "__interval", "__range"}
    for p in panels(d):
        for t in p.get("targets", []):
            used = referenced_metrics(t["expr"])
            used_here |= used
            assert all(exported(n) for n in used), (p["title"], [n for n in used if not exported(n)])
            # a model-level series is filtered by $model (agent-wide ones have no model label)
            if used - {n for n in used if n.startswith(tuple(AGENT_WIDE))}:
                assert '"$model"' in t["expr"] or 'model="unknown"' in t["expr"], (p["title"], t["expr"])
            for var in re.findall(r"\$\{?(\w+)", t["expr"]) + re.findall(r"\$\{?(\w+)", p["title"]):
                assert var in variables, (p["title"], var)
    assert COVERS[d["uid"]] <= used_here, COVERS[d["uid"]] - used_here


def test_dashboards_show_the_new_metrics() -> None:
    used = set()
    for path in DASHBOARDS:
        for p in panels(dashboard(path)):
            for t in p.get("targets", []):
                used |= referenced_metrics(t["expr"])
    assert {"driftwarden_model_promoted_version", "driftwarden_retrain_job_running", "driftwarden_rca_seconds",
            "driftwarden_incidents_open", "driftwarden_rca_cause", "driftwarden_window_failures_total"} <= used


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources.yml").read_text())
    (prom,) = [d for d in ds["datasources"] if d["type"] == "prometheus"]
    assert prom["url"].startswith("http") and prom.get("isDefault")
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yml").read_text())
    (provider,) = dash["providers"]
    # a file provider loads every JSON of its folder: all of grafana/dashboards/
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    assert not provider["options"].get("foldersFromFilesStructure")
