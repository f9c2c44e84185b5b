"""Small, defensive accessors and formatters of the incident report (:mod:`agent.rca.report`): any
value from the incident, absent, null or of the wrong type, to escaped HTML text."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from agent.rca.svg import finite

__all__ = ["MAX_IDS", "MAX_KEYS", "MAX_JSON"]

MAX_IDS = 50            # ids shown per action list; the rest are counted
MAX_KEYS = 60           # evidence keys shown
MAX_JSON = 400          # characters of a nested evidence value shown as compact JSON


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
