"""The incident report page (agent.rca.report) and its SVG charts (agent.rca.svg), read back with
the stdlib HTML parser: every section and chart is there, bars and bands match the data, hostile
strings stay text, missing or broken numbers never crash a chart, and nothing is fetched."""

from __future__ import annotations

import copy
import math
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rca.report import MAX_IDS, render_report
from agent.rca.svg import Reference, grouped_bars, line_chart

EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '"><script>alert(2)</script><img src=x onerror=alert(3)>'


def incident() -> dict[str, Any]:
    """The contract's example incident, with a few more windows."""
    wins = [{"window_id": w, "value": v, "lo": v - 0.02, "hi": v + 0.02, "n": 5000}
            for w, v in zip(range(9, 16), [0.86, 0.86, 0.86, 0.80, 0.74, 0.72, 0.71])]
    return {
        "id": "inc-3", "model": "car-loan", "kind": "performance_drop", "severity": "critical", "status": "open",
        "first_window": 12, "last_window": 15, "summary": "roc_auc 0.71 below reference 0.86",
        "evidence": {"metric": "roc_auc", "value": 0.71, "windows": [12, 13]},
        "rca": {
            "status": "done", "reason": None, "seconds": 2.4, "started_at": 1764580000.0, "finished_at": 1764580002.4,
            "evaluate": {"metric": "roc_auc", "reference": {"value": 0.86, "lo": 0.85, "hi": 0.87},
                         "current": {"value": 0.71, "lo": 0.69, "hi": 0.73}, "drop": {"value": 0.15, "lo": 0.13, "hi": 0.17},
                         "expected": {"value": 0.84, "lo": 0.83, "hi": 0.85},
                         "covariate_part": {"value": 0.02, "lo": 0.01, "hi": 0.03},
                         "concept_part": {"value": 0.13, "lo": 0.11, "hi": 0.15},
                         "n_reference": 50000, "n_current": 20000, "ess": 31000.0, "since_window": 13, "windows": wins},
            "slices": [{"predicates": [["salary_range", "20K - 40K €"], ["loan_length", "[10, 12)"]], "support": 812,
                        "error": 0.41, "rest_error": 0.12, "degradation": 0.29, "score": 235.5, "explained": 0.6,
                        "p_value": 1e-30, "p_adjusted": 1e-28, "significant": True, "ci": [0.38, 0.44],
                        "reference_support": 900, "reference_error": 0.11},
                       {"predicates": [["region", "north"]], "support": 400, "error": 0.15, "rest_error": 0.14,
                        "degradation": 0.01, "p_adjusted": 0.62, "significant": False, "ci": [0.12, 0.19]}],
            "causes": [{"cause": "concept_drift", "feature": None, "segment": "salary_range=20K - 40K €", "confidence": 0.82,
                        "summary": "inputs explain 0.02 of the 0.15 drop",
                        "evidence": {"concept_part": 0.13, "slice_support": 812, "test": {"method": "cond", "p": [1, 2]}}},
                       {"cause": "covariate_shift", "feature": "car_value", "segment": None, "confidence": 0.35,
                        "summary": "car_value moved", "evidence": {"psi": 0.41}}],
            "actions": [{"action": "retrain", "segments": ["salary_range=20K - 40K €"], "exclude_ids": [], "reason": "concept drift"},
                        {"action": "relabel", "ids": ["a1", "a2"], "reason": "labels disagree"}],
            "distributions": {
                "car_value": {"kind": "numeric", "levels": ["[-inf, 1e4)", "[1e4, 2e4)", "[2e4, inf)"],
                              "reference": [0.3, 0.4, 0.3], "current": [0.1, 0.2, 0.7]},
                "salary_range": {"kind": "categorical", "levels": ["0 - 20K €", "20K - 40K €", "40K+ €", "__other__"],
                                 "reference": [0.5, 0.3, 0.1, 0.1], "current": [0.2, 0.6, 0.1, 0.1]}}}}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text: list[str] = []           # this node's own text
        self.content: list[str | Node] = []  # text and children, in document order

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        out = []
        for c in self.children:
            if (tag is None or c.tag == tag) and (cls is None or cls in c.classes):
                out.append(c)
            out += c.all(tag, cls)
        return out

    def string(self) -> str:
        return "".join(c if isinstance(c, str) else c.string() for c in self.content)


class Page(HTMLParser):
    """The page as a small tree (the stdlib parser; void elements closed at once)."""

    VOID = {"meta", "br", "img", "link", "input", "hr", "source", "area", "base", "col", "embed", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        self.cur.content.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        self.cur.content.append(node)

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.text.append(data)
        self.cur.content.append(data)

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return self.root.all(tag, cls)

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.all() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]


def parse(inc: Any) -> Page:
    return Page(render_report(inc))


NUMBERS = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def assert_geometry_finite(page: Page) -> None:
    """Every coordinate of every chart is a finite number (no 'nan', no 'inf')."""
    for svg in page.all("svg"):
        for node in svg.all():
            for key in ("x", "y", "x1", "x2", "y1", "y2", "width", "height", "cx", "cy", "r"):
                if key in node.attrs:
                    assert math.isfinite(float(node.attrs[key] or "")), (node.tag, key, node.attrs)
            if node.tag == "path":
                d = node.attrs.get("d") or ""
                assert re.fullmatch(r"[MLZ0-9.,\- ]+", d), d


# -- the full page ---------------------------------------------------------------------------
def test_the_full_page_has_every_section_and_a_headline() -> None:
    page = parse(incident())
    for sid in ("headline", "incident", "metric", "causes", "actions", "slices", "distributions", "evidence"):
        page.by_id(sid)
    head = page.by_id("headline").string()
    for piece in ("performance drop", "car-loan", "roc_auc 0.71 below reference 0.86", "since window 13",
                  "concept drift", "salary_range=20K - 40K €", "82%", "retrain"):
        assert piece in head, (piece, head)
    header = page.by_id("incident").string()
    for piece in ("inc-3", "car-loan", "critical", "open", "12 – 15", "done in 2.4 s", "2025-12-01"):
        assert piece in header, piece
    assert "sev-critical" in page.by_id("headline").classes
    assert not page.all(cls="pending") and not page.all(cls="failed")


def test_the_metric_chart_has_its_band_line_points_and_reference() -> None:
    page = parse(incident())
    (svg,) = page.all("svg", "metric-chart")
    assert "chart" in svg.classes and svg.attrs["id"] == "metric-chart"
    (band,) = svg.all("path", "band")
    assert band.attrs["d"].startswith("M") and band.attrs["d"].endswith("Z")
    (line,) = svg.all("path", "line")
    assert line.attrs["d"].count("L") == 6               # 7 windows, one stretch
    assert len(svg.all("circle")) == 7
    refs = [n for n in svg.all("line", "reference") if n.parent is svg]
    assert len(refs) == 1 and refs[0].attrs["y1"] == refs[0].attrs["y2"]   # horizontal
    assert svg.all("rect", "reference-band") and svg.all("line", "expected") and svg.all("line", "marker")
    assert_geometry_finite(page)
    table = page.by_id("metric").string()
    assert "0.71 [0.69, 0.73]" in table and "50,000" in table and "31,000" in table


def test_each_implicated_feature_has_grouped_bars_two_per_level() -> None:
    inc = incident()
    page = parse(inc)
    charts = page.all("svg", "dist-chart")
    assert [c.attrs["data-feature"] for c in charts] == ["salary_range", "car_value"]   # the causes' order
    for svg in charts:
        levels = inc["rca"]["distributions"][svg.attrs["data-feature"]]["levels"]
        bars = svg.all("rect", "bar")
        assert len(bars) == 2 * len(levels)
        assert len([b for b in bars if "reference" in b.classes]) == len(levels)
        assert len([b for b in bars if "current" in b.classes]) == len(levels)
    # the bar of a larger share is taller
    car = charts[1].all("rect", "current")
    heights = [float(b.attrs["height"] or 0) for b in car if "bar" in b.classes]
    assert heights[2] > heights[1] > heights[0] > 0
    assert_geometry_finite(page)


def test_the_slice_table_shows_support_error_interval_degradation_p_and_significance() -> None:
    page = parse(incident())
    (table,) = page.all("table", "slices")
    head = [th.string() for th in table.all("th")]
    for col in ("support", "error", "95% interval", "degradation", "p adjusted", "significant"):
        assert col in head
    rows = table.all("tr", "sig") + table.all("tr", "nonsig")
    assert len(rows) == 2
    first = [td.string() for td in table.all("tr", "sig")[0].all("td")]
    assert first[0] == "salary_range = 20K - 40K € ∧ loan_length = [10, 12)"
    assert first[1:] == ["812", "0.41", "[0.38, 0.44]", "0.12", "0.29", "0.11", "1.0e-28", "yes"]
    assert [td.string() for td in table.all("tr", "nonsig")[0].all("td")][-1] == "no"


def test_the_causes_are_ranked_with_confidence_and_compact_evidence() -> None:
    page = parse(incident())
    causes = page.all("li", "cause")
    assert [c.all("b")[0].string() for c in causes] == ["concept drift", "covariate shift"]
    assert "82%" in causes[0].string() and "35%" in causes[1].string()
    kv = {k.string(): k.parent.all("span", "v")[0].string()
          for k in causes[0].all("span", "k") if k.parent is not None}
    assert kv == {"concept_part": "0.13", "slice_support": "812", "test": '{"method":"cond","p":[1,2]}'}


def test_the_actions_show_segments_and_at_most_the_first_ids() -> None:
    inc = incident()
    inc["rca"]["actions"][1]["ids"] = [f"id-{i}" for i in range(1234)]
    page = parse(inc)
    actions = page.all("li", "action")
    assert [a.all("b")[0].string() for a in actions] == ["retrain", "relabel"]
    assert "salary_range=20K - 40K €" in actions[0].string()
    ids = actions[1].all("div", "ids")[0].string()
    assert f"id-{MAX_IDS - 1}," not in ids and f"id-{MAX_IDS - 1}" in ids and f"id-{MAX_IDS}" not in ids
    assert "1,234 in all" in ids


# -- hostile input ---------------------------------------------------------------------------
def plant(inc: dict[str, Any], evil: str) -> dict[str, Any]:
    rca = inc["rca"]
    for key in ("id", "model", "kind", "severity", "status", "summary"):
        inc[key] = f"{key} {evil}"
    inc["evidence"] = {evil: evil, "nested": {evil: [evil]}}
    rca["evaluate"]["metric"] = evil
    rca["slices"][0]["predicates"] = [[evil, evil]]
    rca["causes"][0].update(feature=evil, segment=f"{evil}={evil}", summary=evil, cause=evil, evidence={evil: evil})
    rca["actions"][1].update(ids=[evil] * 3, reason=evil, action=evil, segments=[evil], **{evil: evil})
    rca["distributions"][evil] = {"kind": evil, "levels": [evil, "b"], "reference": [0.5, 0.5], "current": [0.1, 0.9]}
    return inc


@pytest.mark.parametrize("evil", [EVIL, EVIL_ATTR])
def test_hostile_strings_stay_text(evil: str) -> None:
    text = render_report(plant(incident(), evil))
    page = Page(text)
    assert not page.all("script") and not page.all("img")
    for node in page.all():
        assert not any(k.startswith("on") for k in node.attrs), node.attrs   # no event handler injected
    assert "<script>" not in text
    assert f"summary {evil}" in page.by_id("incident").string()    # shown, as text
    assert f"model {evil}" in page.by_id("headline").string()
    assert page.by_id("slices").string().count(evil) == 2
    (chart,) = [c for c in page.all("svg", "dist-chart") if c.attrs["data-feature"] == evil]
    assert len(chart.all("rect", "bar")) == 4
    assert evil in page.all("title")[0].string()


@pytest.mark.parametrize("status, note", [("pending", "analysis pending"), ("running", "analysis pending"),
                                           (None, "analysis pending"), ("weird", "analysis pending")])
def test_a_pending_analysis_says_so(status: str | None, note: str) -> None:
    inc = incident()
    inc["rca"] = {"status": status} if status is not None else None
    page = parse(inc)
    (p,) = page.all("p", "pending")
    assert note in p.string()
    assert "analysis pending" in page.by_id("headline").string()
    assert not page.all("svg")
    assert "inc-3" in page.by_id("incident").string()
    assert not [n for n in page.all("section") if n.attrs.get("id") in ("metric", "causes", "actions", "slices")]


def test_a_failed_analysis_shows_its_reason_prominently() -> None:
    inc = incident()
    inc["rca"] = {"status": "failed", "reason": f"reference file missing: {EVIL}", "seconds": 0.1}
    page = parse(inc)
    alert = page.by_id("rca-failed")
    assert alert.attrs.get("role") == "alert" and "failed" in alert.classes
    assert f"reference file missing: {EVIL}" in alert.string()
    assert "analysis failed" in page.by_id("headline").string()
    assert not [n for n in page.all("section") if n.attrs.get("id") in ("metric", "causes", "slices")]
    assert not page.all("script")
    # it comes before the sections
    order = [n.attrs.get("id") for n in page.all() if n.attrs.get("id")]
    assert order.index("rca-failed") < order.index("incident")


def test_no_labels_means_no_metric_chart_but_a_note() -> None:
    inc = incident()
    inc["rca"]["evaluate"] = {"metric": "roc_auc", "reference": {"value": 0.86, "lo": 0.85, "hi": 0.87},
                              "expected": {"value": 0.84, "lo": 0.83, "hi": 0.85}, "n_reference": 50000}
    page = parse(inc)
    assert not page.all("svg", "metric-chart")
    (note,) = page.all("p", "no-labels")
    assert "no labels" in note.string() and "0.84" in note.string()
    assert len(page.all("svg", "dist-chart")) == 2      # the rest still renders


def test_no_slices_says_no_significant_slice() -> None:
    inc = incident()
    inc["rca"]["slices"] = []
    page = parse(inc)
    assert "no significant slice" in page.by_id("slices").string() and not page.all("table", "slices")
    inc["rca"]["slices"][:] = [dict(incident()["rca"]["slices"][1])]   # only a non-significant one
    page = parse(inc)
    assert "no significant slice" in page.by_id("slices").string() and page.all("table", "slices")


BAD = [float("nan"), None, float("inf"), -float("inf"), "0.5", True, 10 ** 400, {"x": 1}]


def test_nan_none_and_inf_numbers_are_skipped_not_drawn() -> None:
    inc = incident()
    wins = inc["rca"]["evaluate"]["windows"]
    for i, bad in enumerate(BAD[:4]):
        wins[i + 1]["value"] = bad
        wins[(i + 3) % len(wins)]["lo"] = bad
    wins.append({"window_id": float("nan"), "value": 0.5})
    wins.append({"window_id": None, "value": 0.5})
    inc["rca"]["evaluate"]["reference"] = {"value": float("nan"), "lo": None, "hi": float("inf")}
    inc["rca"]["evaluate"]["since_window"] = float("inf")
    inc["rca"]["distributions"]["car_value"]["current"] = [float("nan"), None, float("inf")]
    inc["rca"]["distributions"]["salary_range"]["reference"] = [0.5, "0.3"]      # short and a string
    for key in ("confidence",):
        inc["rca"]["causes"][0][key] = float("nan")
    for key in ("support", "error", "p_adjusted", "degradation"):
        inc["rca"]["slices"][0][key] = float("nan")
    inc["rca"]["slices"][0]["ci"] = [None, float("inf")]
    inc["rca"]["seconds"] = float("nan")
    inc["rca"]["started_at"] = 1e300
    inc["first_window"] = float("-inf")
    page = parse(inc)
    assert_geometry_finite(page)
    (svg,) = page.all("svg", "metric-chart")
    assert len(svg.all("circle")) == 7 - 4
    assert not [n for n in svg.all("line", "reference") if n.parent is svg]    # no reference line at NaN
    car, salary = [c for c in page.all("svg", "dist-chart") if c.attrs["data-feature"] in ("car_value", "salary_range")]
    bars = {c.attrs["data-feature"]: c.all("rect", "bar") for c in (car, salary)}
    assert len(bars["car_value"]) == 3 and len(bars["salary_range"]) == 4 + 1
    assert "nan" not in page.by_id("slices").string().lower()


def test_a_metric_with_every_value_missing_gets_the_note_not_an_empty_chart() -> None:
    inc = incident()
    for w in inc["rca"]["evaluate"]["windows"]:
        w["value"] = float("nan")
    page = parse(inc)
    assert not page.all("svg", "metric-chart") and page.all("p", "no-labels")


@pytest.mark.parametrize("broken", [
    {}, {"rca": "done"}, {"rca": {"status": "done"}}, {"id": 7, "model": ["m"], "kind": {"a": 1}, "severity": 3},
    {"rca": {"status": "done", "causes": {"a": 1}, "actions": "x", "slices": [1, None, "s"], "distributions": [1]}},
    {"rca": {"status": "done", "evaluate": {"windows": "abc", "metric": 5}, "distributions": {"f": {"levels": 5}}}},
    {"rca": {"status": "done", "slices": [{"predicates": "x", "ci": "ab"}], "causes": [{"evidence": [1, 2]}],
             "actions": [{"ids": "abc", "segments": 3}]}},
])
def test_missing_or_mistyped_pieces_never_crash(broken: dict[str, Any]) -> None:
    page = parse(broken)
    page.by_id("headline")
    page.by_id("incident")
    assert_geometry_finite(page)


def test_a_non_mapping_incident_renders_an_empty_report() -> None:
    page = parse(None)
    assert "incident" in page.by_id("headline").string()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["status", "evaluate", "slices", "causes", "actions", "distributions",
                                        "reason", "seconds"]), json_values, max_size=8), json_values)
def test_arbitrary_json_in_the_analysis_never_crashes(rca: dict[str, Any], evidence: Any) -> None:
    inc = copy.deepcopy(incident())
    inc["rca"].update(rca)
    inc["evidence"] = evidence
    page = parse(inc)
    assert not page.all("script")
    assert_geometry_finite(page)


# -- self-contained ------------------------------------------------------------------------------
def test_nothing_is_fetched_from_the_network() -> None:
    text = render_report(incident())
    page = Page(text)
    assert not page.all("script") and not page.all("link") and not page.all("img") and not page.all("iframe")
    for node in page.all():
        for key in ("src", "href", "xlink:href", "srcset", "action", "data", "poster"):
            value = (node.attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (node.tag, key, value)
    assert "http://" not in text and "https://" not in text
    assert "url(" not in text and "@import" not in text
    (csp,) = [m for m in page.all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in (csp.attrs["content"] or "")
    assert page.all("style")
    text.encode("utf-8")


# -- the chart helpers alone -----------------------------------------------------------------
def test_line_chart_breaks_the_line_and_band_at_missing_points() -> None:
    svg = Page(line_chart([1, 2, 3, 4, 5], [0.5, 0.6, None, 0.7, 0.8], [0.4, 0.5, 0.5, None, 0.7],
                          [0.6, 0.7, 0.7, None, 0.9], references=[Reference("ref", 0.65)]))
    (band,) = svg.all("path", "band")
    assert band.attrs["d"].count("M") == 2      # windows 1-3 and 5
    (line,) = svg.all("path", "line")
    assert line.attrs["d"].count("M") == 2      # windows 1-2 and 4-5
    assert_geometry_finite(svg)


def test_line_chart_with_nothing_finite_is_only_a_frame() -> None:
    svg = Page(line_chart([float("nan"), None], [None, float("inf")], references=[Reference("ref", None)]))
    assert len(svg.all("svg")) == 1 and not svg.all("path") and not svg.all("circle")
    assert_geometry_finite(svg)


def test_grouped_bars_with_many_long_levels_cut_their_labels() -> None:
    levels = [f"level-{i}-" + "x" * 40 for i in range(30)]
    svg = Page(grouped_bars(levels, [1 / 30] * 30, [1 / 30] * 30, attrs={"data-feature": "f"}))
    assert len(svg.all("rect", "bar")) == 60
    labels = [t for t in svg.all("text") if t.attrs.get("transform")]
    assert labels and all(len(t.text[0]) <= 16 for t in labels)
    assert_geometry_finite(svg)


def test_line_chart_takes_repeated_and_unsorted_windows() -> None:
    svg = Page(line_chart([3, 1, 2, 2, 1], [0.7, None, 0.6, float("nan"), 0.5], [None, 0.4, 0.5, 0.5, None],
                          [0.8, 0.6, 0.7, 0.7, None]))
    cx = [float(c.attrs["cx"] or 0) for c in svg.all("circle")]
    assert len(cx) == 3 and cx == sorted(cx)
    assert_geometry_finite(svg)
