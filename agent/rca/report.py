"""The incident report page: one incident (a JSON-ready dict) -> one self-contained HTML page.

The page needs no network to render: the stylesheet is inline, the charts are inline SVG
(``agent.rca.svg``), there is no script, no font and no image to fetch, and a Content-Security-Policy
meta tag forbids loading anything (a second line of defence behind the escaping). Every string from
the incident is escaped: feature names, segment values and summaries come from hostile Kafka input.

Any piece may be absent, null or of the wrong type; the page then says what is missing instead of
failing. At the top one line says what broke, where, since when, the top cause and the top action;
then the sections: the incident, the metric over windows, the causes (in the worker's rank order),
the actions, the slices, the distributions of the implicated features, the incident's evidence.
Until the analysis is done, a section with nothing to show is left out (the note at the top says why);
once done, an empty one says so ("no significant slice").

>>> page = render_report({"id": "inc-1", "model": "m", "kind": "data_drift", "rca": {"status": "pending"}})
>>> page.startswith("<!DOCTYPE html>") and "analysis pending" in page
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from agent.rca.svg import Reference, finite, grouped_bars, line_chart

__all__ = ["render_report"]

MAX_IDS = 50            # ids shown per action list; the rest are counted
MAX_ROWS = 100          # slices, causes, actions shown
MAX_CHARTS = 24         # distribution charts
MAX_LEVELS = 60         # bars per distribution chart (the rest are counted)
MAX_KEYS = 60           # evidence keys shown
MAX_JSON = 400          # characters of a nested evidence value shown as compact JSON

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


# -- small, defensive accessors ------------------------------------------------------------
def _map(x: object) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _seq(x: object) -> Sequence[Any]:
    return x if isinstance(x, list | tuple) else ()


def _num(x: object, percent: bool = False) -> str:
    """A number for a person: thousands separated, 4 significant digits, "—" when missing."""
    v = finite(x)
    if v is None:
        return "—"
    if percent:
        return f"{v * 100:.0f}%"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1e4:
        return f"{v:,.1f}"
    if abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.4g}"


def _compact(x: object) -> str:
    try:
        text = json.dumps(x, separators=(",", ":"), ensure_ascii=False, default=str)
    except (RecursionError, ValueError, TypeError):
        text = "…"
    return text if len(text) <= MAX_JSON else text[: MAX_JSON - 1] + "…"


def _str(x: object) -> str:
    """Any value as plain (unescaped) text: strings as they are, numbers formatted, the rest JSON."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int | float):
        return _num(x)
    return _compact(x)


def _t(x: object) -> str:
    """Escaped text of any value."""
    return escape(_str(x))


def _human(x: object) -> str:
    """``concept_drift`` -> ``concept drift`` (escaped)."""
    return escape(_str(x).replace("_", " "))


def _interval(d: object) -> str:
    """``{"value": .71, "lo": .69, "hi": .73}`` -> ``0.71 [0.69, 0.73]`` (escaped; a bare number works too)."""
    if not isinstance(d, Mapping):
        return escape(_num(d))
    out = _num(d.get("value"))
    if finite(d.get("lo")) is not None or finite(d.get("hi")) is not None:
        out += f' <span class="ci">[{_num(d.get("lo"))}, {_num(d.get("hi"))}]</span>'
    return out


def _value(d: object) -> object:
    return d.get("value") if isinstance(d, Mapping) else d


def _time(x: object) -> str:
    v = finite(x)
    if v is None:
        return "—"
    try:
        return datetime.fromtimestamp(v, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return _num(v)


def _p(x: object) -> str:
    v = finite(x)
    if v is None:
        return "—"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


def _kv(d: object) -> str:
    """An evidence dict as a compact key/value list; nested values as compact JSON."""
    if not isinstance(d, Mapping):
        return f'<code class="json">{escape(_compact(d))}</code>' if d not in (None, "", [], ()) else ""
    if not d:
        return ""
    items = []
    for i, (k, v) in enumerate(d.items()):
        if i == MAX_KEYS:
            items.append(f'<li class="more">… {len(d) - MAX_KEYS} more</li>')
            break
        if isinstance(v, Mapping | list | tuple):
            val = f'<code class="json">{escape(_compact(v))}</code>'
        elif v is None:
            val = '<span class="null">null</span>'
        else:
            val = _t(v)
        items.append(f'<li><span class="k">{_t(k)}</span> <span class="v">{val}</span></li>')
    return f'<ul class="kv">{"".join(items)}</ul>'


def _ids(xs: object, label: str) -> str:
    ids = _seq(xs)
    if not ids:
        return ""
    shown = ", ".join(_t(i) for i in ids[:MAX_IDS])
    more = f" … ({len(ids):,} in all)" if len(ids) > MAX_IDS else f" ({len(ids):,})"
    return f'<div class="ids"><span class="k">{escape(label)}</span> <code>{shown}</code>{more}</div>'


def _predicates(preds: object) -> str:
    parts = []
    for p in _seq(preds):
        if isinstance(p, list | tuple) and len(p) == 2:
            parts.append(f'<span class="pred"><b>{_t(p[0])}</b> = {_t(p[1])}</span>')
        else:
            parts.append(f'<span class="pred">{_t(p)}</span>')
    return " <span class=\"and\">∧</span> ".join(parts) or "—"


def _note(css: str, html_text: str) -> str:
    return f'<p class="note {css}">{html_text}</p>'


def _done(rca: Mapping[str, Any]) -> bool:
    """The analysis finished: an empty section then says "none"; before that it is left out."""
    return rca.get("status") == "done"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{body}</section>'


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


_STYLE = """
:root{--bg:#fff;--fg:#1d2430;--muted:#5c6878;--line:#dde3ea;--card:#f6f8fa;--accent:#1f5fbf;
--band:rgba(31,95,191,.16);--ref:#2b8a3e;--refband:rgba(43,138,62,.10);--exp:#8a5a00;--marker:#c92a2a;
--bar-ref:#8fa3b8;--bar-cur:#e8590c;--crit:#c92a2a;--warn:#e67700;--info:#1971c2;--bad-bg:#fff0f0}
@media (prefers-color-scheme:dark){:root{--bg:#14181f;--fg:#e3e8ef;--muted:#9aa6b5;--line:#2c3440;
--card:#1b212a;--accent:#74a7ff;--band:rgba(116,167,255,.22);--ref:#69db7c;--refband:rgba(105,219,124,.12);
--exp:#ffc078;--marker:#ff8787;--bar-ref:#6c7f94;--bar-cur:#ff922b;--bad-bg:#3a1d1d}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1160px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:18px;margin:4px 0 10px;color:var(--muted);font-weight:600}
h2{font-size:16px;margin:0 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
section{margin:18px 0 0}
code,.json{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
.headline{font-size:17px;margin:0;padding:12px 16px;background:var(--card);border-left:6px solid var(--muted);
border-radius:4px}
.headline.sev-critical{border-color:var(--crit)}.headline.sev-warning{border-color:var(--warn)}
.headline.sev-info{border-color:var(--info)}
.headline .sep{color:var(--muted);padding:0 2px}
.headline .where{font-weight:600}
.alert.failed{margin:12px 0 0;padding:12px 16px;border:2px solid var(--crit);background:var(--bad-bg);
border-radius:4px;font-size:16px}
.alert.failed .reason{display:block;margin-top:4px;font-family:ui-monospace,"DejaVu Sans Mono",monospace;
font-size:13px;white-space:pre-wrap;word-break:break-word}
.note{color:var(--muted);background:var(--card);padding:8px 12px;border-radius:4px;margin:8px 0}
.note.pending{margin-top:12px;border-left:4px solid var(--warn);color:var(--fg)}
.note.no-labels{border-left:4px solid var(--info);color:var(--fg)}
dl.header{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:6px 16px;margin:0}
dl.header div{min-width:0}dt{color:var(--muted);font-size:12px}dd{margin:0;font-weight:600;word-break:break-word}
p.summary{margin:6px 0}
.badge{display:inline-block;padding:0 8px;border-radius:10px;color:#fff;background:var(--muted);font-size:12px}
.badge.sev-critical{background:var(--crit)}.badge.sev-warning{background:var(--warn)}
.badge.sev-info{background:var(--info)}
.metric-row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.eval th{color:var(--muted);font-weight:normal}table.eval caption{text-align:left;font-weight:600}
table.slices{width:100%}table.slices td:not(.slice){font-variant-numeric:tabular-nums;white-space:nowrap}
table.slices th{color:var(--muted);font-weight:600;font-size:12px}
tr.sig td.flag{color:var(--crit);font-weight:700}tr.nonsig{color:var(--muted)}
.pred{white-space:nowrap;word-break:break-word}.and{color:var(--muted)}
.ci{color:var(--muted)}
ol.causes,ol.actions{margin:0;padding-left:22px}
li.cause,li.action{margin:0 0 10px;padding:8px 10px;background:var(--card);border-radius:4px}
.cause-head,.action-head{display:flex;flex-wrap:wrap;align-items:center;gap:8px;text-transform:none}
.cause-head b,.action-head b{font-size:15px}
.tag{display:inline-block;padding:0 6px;border:1px solid var(--line);border-radius:3px;background:var(--bg);
font-size:12px;word-break:break-word}
.conf{display:inline-block;width:90px;height:8px;background:var(--line);border-radius:4px;overflow:hidden}
.conf span{display:block;height:100%;background:var(--accent)}.conf-text{font-size:12px;color:var(--muted)}
ul.kv{list-style:none;margin:4px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px}
ul.kv .k{color:var(--muted)}ul.kv .k:after{content:":"}.null{color:var(--muted)}
.ids{font-size:12px;margin-top:4px}.ids .k{color:var(--muted)}
.dists{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:12px}
figure.dist{margin:0;padding:8px;background:var(--card);border-radius:4px;min-width:0}
figcaption{font-size:13px;margin-bottom:2px;word-break:break-word}.kind{color:var(--muted);font-size:12px}
svg.chart{display:block;max-width:100%;height:auto;font:11px system-ui,"DejaVu Sans",sans-serif}
svg.chart text{fill:var(--muted)}svg.chart .legend text{fill:var(--fg)}
svg.chart .grid line{stroke:var(--line);stroke-width:1}
svg.chart .axis line{stroke:var(--muted);stroke-width:1}
svg.chart .band{fill:var(--band);stroke:none}
svg.chart .line{fill:none;stroke:var(--accent);stroke-width:2.2;stroke-linejoin:round}
svg.chart line.line{stroke-width:2.2}
svg.chart .points circle{fill:var(--accent);stroke:var(--bg);stroke-width:1}
svg.chart line.reference{stroke:var(--ref);stroke-width:1.6;stroke-dasharray:6 4}
svg.chart .reference-band{fill:var(--refband)}
svg.chart line.expected{stroke:var(--exp);stroke-width:1.4;stroke-dasharray:2 3}
svg.chart .marker{stroke:var(--marker);stroke-width:1.2;stroke-dasharray:3 3}
svg.chart text.marker-label{fill:var(--marker)}
svg.chart .bar.reference,svg.chart .swatch.reference{fill:var(--bar-ref)}
svg.chart .bar.current,svg.chart .swatch.current{fill:var(--bar-cur)}
footer{margin-top:28px;color:var(--muted);font-size:12px}
"""


def render_report(incident: Mapping[str, Any]) -> str:
    """The incident as one self-contained HTML page (text; encode it as UTF-8).

    ``incident`` follows the store's incident shape with the worker's ``rca`` result under "rca";
    any field may be absent or null. Nothing in it is trusted: every string is escaped and every
    number is checked before it reaches a chart.
    """
    inc = _map(incident)
    rca = _map(inc.get("rca"))
    ev = _map(rca.get("evaluate"))
    title = " · ".join(x for x in (_str(inc.get("id")), _str(inc.get("model")), _str(inc.get("kind"))) if x)
    body = "".join((
        f"<h1>driftwarden incident report{': ' + escape(title) if title else ''}</h1>",
        _headline(inc, rca, ev), _status_note(rca), _header(inc, rca), _metric(rca, ev), _causes(rca),
        _actions(rca), _slices(rca), _distributions(rca), _evidence(inc),
        f"<footer>driftwarden · root-cause analysis {_t(rca.get('status')) or 'pending'}"
        f"{' · finished ' + _time(rca.get('finished_at')) if finite(rca.get('finished_at')) is not None else ''}"
        "</footer>"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            f"<title>{escape(title) or 'incident report'}</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
