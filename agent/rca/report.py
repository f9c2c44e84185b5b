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

from collections.abc import Mapping
from html import escape
from typing import Any

from agent.rca.report_format import MAX_IDS, MAX_JSON, MAX_KEYS, _map, _str, _t, _time
from agent.rca.report_sections import (MAX_CHARTS, MAX_LEVELS, MAX_ROWS, _actions, _causes, _distributions,
                                       _evidence, _header, _headline, _metric, _slices, _status_note)
from agent.rca.svg import finite

__all__ = ["render_report", "MAX_IDS", "MAX_ROWS", "MAX_CHARTS", "MAX_LEVELS", "MAX_KEYS", "MAX_JSON"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


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
