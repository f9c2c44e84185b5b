"""The pieces of the incident report page (:mod:`agent.rca.report`): the headline, the status note,
and the sections (incident, metric, causes, actions, slices, distributions, evidence)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from agent.rca.report_format import (MAX_IDS, _done, _human, _ids, _interval, _kv, _map, _note, _num, _p,
                                     _predicates, _section, _seq, _str, _t, _time, _value)
from agent.rca.svg import Reference, finite, grouped_bars, line_chart

__all__ = ["MAX_ROWS", "MAX_CHARTS", "MAX_LEVELS"]

MAX_ROWS = 100          # slices, causes, actions shown
MAX_CHARTS = 24         # distribution charts
MAX_LEVELS = 60         # bars per distribution chart (the rest are counted)


# -- the pieces of the page ------------------------------------------------------------------
def _cause_where(c: Mapping[str, Any]) -> str:
    where = [x for x in (c.get("feature"), c.get("segment")) if x not in (None, "")]
    return ", ".join(_t(x) for x in where)


def _action_where(a: Mapping[str, Any]) -> str:
    segs = _seq(a.get("segments"))
    ids = _seq(a.get("ids"))
    if segs:
        extra = f" +{len(segs) - 3} more" if len(segs) > 3 else ""
        return ", ".join(_t(s) for s in segs[:3]) + extra
    if ids:
        return f"{len(ids):,} ids"
    return ""


def _since(inc: Mapping[str, Any], ev: Mapping[str, Any]) -> object:
    since = ev.get("since_window")
    return since if finite(since) is not None else inc.get("first_window")


def _headline(inc: Mapping[str, Any], rca: Mapping[str, Any], ev: Mapping[str, Any]) -> str:
    status = _str(rca.get("status")) or "pending"
    parts = [f'<b class="what">{_human(inc.get("kind")) or "incident"}</b>',
             f'<span class="where">{_t(inc.get("model")) or "unknown model"}</span>']
    if _str(inc.get("summary")):
        parts.append(f'<span class="summary">{_t(inc.get("summary"))}</span>')
    since = _since(inc, ev)
    if finite(since) is not None:
        parts.append(f'<span class="since">since window {_num(since)}</span>')
    causes = [c for c in _seq(rca.get("causes")) if isinstance(c, Mapping)]
    actions = [a for a in _seq(rca.get("actions")) if isinstance(a, Mapping)]
    if status == "failed":
        parts.append('<span class="cause">analysis failed</span>')
    elif status != "done":
        parts.append('<span class="cause">cause: analysis pending</span>')
    elif causes:
        c = causes[0]
        where = _cause_where(c)
        detail = ", ".join(x for x in (where, _num(c.get("confidence"), percent=True)) if x and x != "—")
        parts.append(f'<span class="cause">cause: <b>{_human(c.get("cause"))}</b>'
                     f'{f" ({detail})" if detail else ""}</span>')
    else:
        parts.append('<span class="cause">cause: none identified</span>')
    if status == "done":
        if actions:
            a = actions[0]
            where = _action_where(a)
            parts.append(f'<span class="action">action: <b>{_human(a.get("action"))}</b>'
                         f'{f" {where}" if where else ""}</span>')
        else:
            parts.append('<span class="action">action: none proposed</span>')
    sev = _str(inc.get("severity")).lower()
    sev_css = sev if sev in ("critical", "warning", "info") else "unknown"
    return f'<p id="headline" class="headline sev-{sev_css}">{" <span class=sep>·</span> ".join(parts)}</p>'


def _status_note(rca: Mapping[str, Any]) -> str:
    status = _str(rca.get("status")) or "pending"
    if status == "done":
        return ""
    if status == "failed":
        reason = _t(rca.get("reason")) or "no reason given"
        return (f'<div id="rca-failed" class="alert failed" role="alert"><b>Root-cause analysis failed.</b> '
                f'<span class="reason">{reason}</span></div>')
    if status in ("pending", "running"):
        what = "is running" if status == "running" else "has not started yet"
        return _note("pending", f"<b>analysis pending</b>: the root-cause analysis {what}; "
                                f"this page shows what the incident itself holds.")
    return _note("pending", f"<b>analysis pending</b>: unknown analysis status “{escape(status)}”.")


def _header(inc: Mapping[str, Any], rca: Mapping[str, Any]) -> str:
    sev = _str(inc.get("severity")).lower()
    sev_css = sev if sev in ("critical", "warning", "info") else "unknown"
    first, last = inc.get("first_window"), inc.get("last_window")
    windows = "—" if finite(first) is None and finite(last) is None else f"{_num(first)} – {_num(last)}"
    rows = [("id", f"<code>{_t(inc.get('id')) or '—'}</code>"), ("model", _t(inc.get("model")) or "—"),
            ("kind", _human(inc.get("kind")) or "—"),
            ("severity", f'<span class="badge sev-{sev_css}">{_t(inc.get("severity")) or "—"}</span>'),
            ("status", _t(inc.get("status")) or "—"), ("windows", windows)]
    if _str(inc.get("source")):
        rows.append(("source", _t(inc.get("source"))))
    analysis = _t(rca.get("status")) or "pending"
    if finite(rca.get("seconds")) is not None:
        analysis += f" in {_num(rca.get('seconds'))} s"
    rows.append(("analysis", analysis))
    if finite(rca.get("started_at")) is not None:
        rows.append(("analysis started", _time(rca.get("started_at"))))
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in rows)
    summary = f'<p class="summary">{_t(inc.get("summary"))}</p>' if _str(inc.get("summary")) else ""
    return _section("incident", "Incident", f'<dl class="header">{dl}</dl>{summary}')


_EVAL_ROWS = (("reference", "reference"), ("current", "current"), ("drop", "drop"),
              ("expected", "expected from the inputs (label-free)"), ("covariate_part", "explained by input drift"),
              ("concept_part", "explained by concept drift"), ("n_reference", "reference rows"),
              ("n_current", "current rows (labelled)"), ("ess", "effective sample size"),
              ("since_window", "since window"))


def _metric(rca: Mapping[str, Any], ev: Mapping[str, Any]) -> str:
    if not ev:
        return _section("metric", "Metric", _note("no-eval", "no evaluation in this analysis")) if _done(rca) else ""
    metric = _str(ev.get("metric")) or "metric"
    windows = [w for w in _seq(ev.get("windows")) if isinstance(w, Mapping)]
    body = []
    if any(finite(w.get("value")) is not None and finite(w.get("window_id")) is not None for w in windows):
        ref = _map(ev.get("reference"))
        exp = ev.get("expected")
        refs = [Reference("reference", finite(_value(ref)), finite(ref.get("lo")), finite(ref.get("hi")))]
        if finite(_value(exp)) is not None:
            refs.append(Reference("expected (label-free)", finite(_value(exp)), css="expected"))
        body.append(line_chart([w.get("window_id") for w in windows], [w.get("value") for w in windows],
                               [w.get("lo") for w in windows], [w.get("hi") for w in windows],
                               references=refs, marker_x=ev.get("since_window"), y_label=metric,
                               title=f"{metric} over windows with its interval and the reference",
                               attrs={"id": "metric-chart"}))
    else:
        extra = ""
        if finite(_value(ev.get("expected"))) is not None:
            extra = f"; the label-free estimate is {_interval(ev.get('expected'))}"
        body.append(_note("no-labels", f"<b>no labels</b> for the current windows yet: {escape(metric)} cannot be "
                                       f"measured, so there is no metric chart{extra}."))
    rows = [(label, _interval(ev.get(key))) for key, label in _EVAL_ROWS if ev.get(key) is not None]
    if rows:
        cells = "".join(f"<tr><th>{escape(label)}</th><td>{val}</td></tr>" for label, val in rows)
        body.append(f'<table class="eval"><caption>{escape(metric)}</caption>{cells}</table>')
    return _section("metric", f"Metric: {metric}", f'<div class="metric-row">{"".join(body)}</div>')


def _confidence(x: object) -> str:
    v = finite(x)
    if v is None:
        return '<span class="conf-text">confidence —</span>'
    w = min(max(v, 0.0), 1.0) * 100
    return (f'<span class="conf" title="confidence"><span style="width:{w:.0f}%"></span></span>'
            f'<span class="conf-text">{w:.0f}%</span>')


def _causes(rca: Mapping[str, Any]) -> str:
    causes = [c for c in _seq(rca.get("causes")) if isinstance(c, Mapping)]
    if not causes:
        return _section("causes", "Causes", _note("no-causes", "no cause identified")) if _done(rca) else ""
    items = []
    for c in causes[:MAX_ROWS]:
        where = _cause_where(c)
        where_html = f' <span class="tag">{where}</span>' if where else ""
        summary = f'<p class="summary">{_t(c.get("summary"))}</p>' if _str(c.get("summary")) else ""
        items.append(f'<li class="cause"><div class="cause-head"><b>{_human(c.get("cause")) or "cause"}</b>'
                     f'{where_html}{_confidence(c.get("confidence"))}</div>{summary}{_kv(c.get("evidence"))}</li>')
    more = _note("more", f"… {len(causes) - MAX_ROWS:,} more causes") if len(causes) > MAX_ROWS else ""
    return _section("causes", "Causes, ranked", f'<ol class="causes">{"".join(items)}</ol>{more}')


def _actions(rca: Mapping[str, Any]) -> str:
    actions = [a for a in _seq(rca.get("actions")) if isinstance(a, Mapping)]
    if not actions:
        return _section("actions", "Actions", _note("no-actions", "no action proposed")) if _done(rca) else ""
    items = []
    known = {"action", "reason", "segments", "ids", "exclude_ids"}
    for a in actions[:MAX_ROWS]:
        segs = _seq(a.get("segments"))
        seg_html = "".join(f'<span class="tag">{_t(s)}</span>' for s in segs[:MAX_IDS])
        if len(segs) > MAX_IDS:
            seg_html += f" … ({len(segs):,} segments)"
        reason = f'<p class="summary">{_t(a.get("reason"))}</p>' if _str(a.get("reason")) else ""
        rest = {k: v for k, v in a.items() if k not in known}
        items.append(f'<li class="action"><div class="action-head"><b>{_human(a.get("action")) or "action"}</b> '
                     f'{seg_html}</div>{reason}{_ids(a.get("ids"), "ids")}{_ids(a.get("exclude_ids"), "excluding")}'
                     f"{_kv(rest)}</li>")
    more = _note("more", f"… {len(actions) - MAX_ROWS:,} more actions") if len(actions) > MAX_ROWS else ""
    return _section("actions", "Actions", f'<ol class="actions">{"".join(items)}</ol>{more}')


def _slices(rca: Mapping[str, Any]) -> str:
    slices = [s for s in _seq(rca.get("slices")) if isinstance(s, Mapping)]
    if not slices:
        return _section("slices", "Slices", _note("no-slices", "no significant slice")) if _done(rca) else ""
    head = ("slice", "support", "error", "95% interval", "rest error", "degradation", "ref. error",
            "p adjusted", "significant")
    rows = []
    for s in slices[:MAX_ROWS]:
        ci = _seq(s.get("ci"))
        ci_text = f"[{_num(ci[0])}, {_num(ci[1])}]" if len(ci) == 2 else "—"
        sig = s.get("significant") is True
        rows.append(f'<tr class="{"sig" if sig else "nonsig"}"><td class="slice">{_predicates(s.get("predicates"))}</td>'
                    f'<td>{_num(s.get("support"))}</td><td>{_num(s.get("error"))}</td><td class="ci">{ci_text}</td>'
                    f'<td>{_num(s.get("rest_error"))}</td><td><b>{_num(s.get("degradation"))}</b></td>'
                    f'<td>{_num(s.get("reference_error"))}</td><td>{_p(s.get("p_adjusted"))}</td>'
                    f'<td class="flag">{"yes" if sig else "no"}</td></tr>')
    note = "" if any(s.get("significant") is True for s in slices) else _note("no-slices", "no significant slice")
    more = _note("more", f"… {len(slices) - MAX_ROWS:,} more slices") if len(slices) > MAX_ROWS else ""
    table = (f'<table class="slices"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>')
    return _section("slices", "Slices", note + table + more)


def _implicated_order(rca: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """Features named by the causes first, then by the slices, then the rest as given."""
    first: list[str] = []
    for c in _seq(rca.get("causes")):
        if isinstance(c, Mapping) and isinstance(c.get("feature"), str):
            first.append(c["feature"])
        if isinstance(c, Mapping) and isinstance(c.get("segment"), str):
            first.append(c["segment"].split("=", 1)[0])
    for s in _seq(rca.get("slices")):
        for p in _seq(_map(s).get("predicates")):
            if isinstance(p, list | tuple) and p and isinstance(p[0], str):
                first.append(p[0])
    ranked = [n for n in dict.fromkeys(first) if n in names]
    return ranked + [n for n in names if n not in set(ranked)]


def _largest_shift(levels: Sequence[str], ref: Sequence[Any], cur: Sequence[Any]) -> str:
    best, at = -1.0, -1
    for i in range(min(len(levels), len(ref), len(cur))):
        r, c = finite(ref[i]), finite(cur[i])
        if r is not None and c is not None and abs(c - r) > best:
            best, at = abs(c - r), i
    if at < 0:
        return ""
    return (f'largest change: <b>{escape(levels[at])}</b> '
            f"{_num(ref[at], percent=True)} → {_num(cur[at], percent=True)}")


def _distributions(rca: Mapping[str, Any]) -> str:
    dists = {str(k): v for k, v in _map(rca.get("distributions")).items() if isinstance(v, Mapping)}
    if not dists:
        note = _note("no-dists", "no distribution in this analysis")
        return _section("distributions", "Distributions", note) if _done(rca) else ""
    figs = []
    order = _implicated_order(rca, list(dists))
    for name in order[:MAX_CHARTS]:
        d = dists[name]
        levels = [_str(x) for x in _seq(d.get("levels"))]
        ref, cur = _seq(d.get("reference")), _seq(d.get("current"))
        cut = ""
        if len(levels) > MAX_LEVELS:
            cut = _note("more", f"first {MAX_LEVELS} of {len(levels):,} levels")
            levels = levels[:MAX_LEVELS]
        chart = grouped_bars(levels, ref, cur, title=f"{name}: reference vs current shares",
                             attrs={"data-feature": name}) if levels else _note("no-levels", "no levels")
        kind = f' <span class="kind">{_t(d.get("kind"))}</span>' if _str(d.get("kind")) else ""
        shift = _largest_shift(levels, ref, cur)
        figs.append(f'<figure class="dist"><figcaption><b>{escape(name)}</b>{kind}'
                    f'{f" · {shift}" if shift else ""}</figcaption>{chart}{cut}</figure>')
    more = _note("more", f"… {len(order) - MAX_CHARTS:,} more features") if len(order) > MAX_CHARTS else ""
    return _section("distributions", "Distributions: reference vs current",
                    f'<div class="dists">{"".join(figs)}</div>{more}')


def _evidence(inc: Mapping[str, Any]) -> str:
    body = _kv(inc.get("evidence"))
    return _section("evidence", "Incident evidence", body) if body else ""
