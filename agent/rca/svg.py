"""Small hand-written SVG charts for the incident report: no plotting library, no network.

Two charts, each returned as one ``<svg>`` element (text) to inline in an HTML page:

- ``line_chart``: a metric over windows, its interval band, horizontal reference lines (each with
  an optional band of its own) and an optional vertical "since" marker;
- ``grouped_bars``: reference vs current shares per bin/level.

Every number may be missing or not finite (None, NaN, inf, a stray string): such points are
skipped, never drawn at a bogus position and never raised on. Every string is escaped. Colours come
from CSS classes (``line``, ``band``, ``reference``, ``bar reference``, ``bar current``...), so the
page's stylesheet themes them.

>>> svg = line_chart([1, 2, 3], [0.8, None, 0.7], [0.7, 0.7, 0.6], [0.9, 0.9, 0.8],
...                  references=[Reference("reference", 0.86)])
>>> svg.startswith("<svg") and 'class="band"' in svg and 'class="reference"' in svg
True
>>> grouped_bars(["a", "b"], [0.5, 0.5], [0.2, 0.8]).count("<rect class=\\"bar ")
4
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TypeVar

__all__ = ["Reference", "finite", "grouped_bars", "line_chart", "nice_ticks"]

_FONT_PX = 11  # tick labels; the widths below assume it
_T = TypeVar("_T")
_MAX = 1e100  # larger magnitudes (and inf, NaN) count as missing: they would overflow the scales


@dataclass(frozen=True, slots=True)
class Reference:
    """A horizontal line at ``value`` (with a band ``lo``..``hi`` when both are given)."""

    label: str
    value: float | None
    lo: float | None = None
    hi: float | None = None
    css: str = "reference"   # the line's class; the band gets "<css>-band"


def finite(x: object) -> float | None:
    """``x`` as a float when it is a finite real number (not a bool) of at most 1e100, else None.

    >>> finite(0.5), finite("0.5"), finite(float("nan")), finite(None), finite(True)
    (0.5, None, None, None, None)
    """
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        v = float(x)
    except (OverflowError, ValueError):   # an int too large for a float
        return None
    return v if abs(v) <= _MAX else None


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` round tick values covering ``lo``..``hi`` (steps of 1, 2 or 5 x 10^k).

    >>> nice_ticks(0.0, 1.0)
    [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    >>> nice_ticks(11, 12, integer=True)
    [11.0, 12.0]
    """
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    step = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= step * m:
            step *= m
            break
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9)
    out: list[float] = []
    k = first
    while k * step <= hi + step * 1e-9 and len(out) < 50:
        out.append(k * step)
        k += 1
    return out or [lo]


def _decimals(step: float) -> int:
    return max(0, min(8, -math.floor(math.log10(step)) if step > 0 else 0))


def _label(v: float, step: float, percent: bool = False) -> str:
    if percent:
        return f"{v * 100:.{max(0, _decimals(step * 100))}f}%"
    if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-4):
        return f"{v:.2g}"
    return f"{v:.{_decimals(step)}f}"


def _f(v: float) -> str:
    """A coordinate, short."""
    return f"{v:.1f}"


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 1)] + "…"


def _attrs(attrs: Mapping[str, str] | None) -> str:
    return "".join(f' {escape(str(k))}="{escape(str(v))}"' for k, v in (attrs or {}).items())


def _open_svg(width: int, height: int, css_class: str, title: str, attrs: Mapping[str, str] | None) -> list[str]:
    return [f'<svg class="{escape(css_class)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
            f'{_attrs(attrs)}>', f"<title>{escape(title)}</title>"]


def _runs(items: Sequence[_T], ok: Callable[[_T], bool]) -> list[list[_T]]:
    """Consecutive stretches of ``items`` where ``ok`` holds (a missing point breaks a line)."""
    runs: list[list[_T]] = []
    cur: list[_T] = []
    for item in items:
        if ok(item):
            cur.append(item)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def line_chart(x: Sequence[object], y: Sequence[object], lo: Sequence[object] | None = None,
               hi: Sequence[object] | None = None, *, references: Sequence[Reference] = (),
               marker_x: object = None, marker_label: str = "since", title: str = "metric",
               y_label: str = "", x_label: str = "window", width: int = 700, height: int = 280,
               css_class: str = "chart metric-chart", attrs: Mapping[str, str] | None = None) -> str:
    """A line of ``y`` over ``x`` with the band ``lo``..``hi``, reference lines and a marker.

    Points whose ``x`` or ``y`` is missing are skipped (the line breaks there); the band breaks
    where ``lo`` or ``hi`` is missing. With no finite point at all the chart is only its frame.
    """
    yv = list(y)
    lov, hiv = list(lo or ()), list(hi or ())

    def at(seq: list[object], i: int) -> float | None:
        return finite(seq[i]) if i < len(seq) else None

    # (x, y, lo, hi) of every point with a finite x, in x order
    pts: list[tuple[float, float | None, float | None, float | None]] = sorted(
        ((xv, at(yv, i), at(lov, i), at(hiv, i)) for i, xv in enumerate(finite(v) for v in x) if xv is not None),
        key=lambda p: p[0])
    refs = [r for r in references if finite(r.value) is not None]
    mx = finite(marker_x)

    vals = [v for p in pts for v in p[1:] if v is not None]
    for r in refs:
        vals += [v for v in (finite(r.value), finite(r.lo), finite(r.hi)) if v is not None]
    y0, y1 = (min(vals), max(vals)) if vals else (0.0, 1.0)
    pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.05, 0.05)
    y0, y1 = y0 - pad, y1 + pad
    xvals = [p[0] for p in pts] + ([mx] if mx is not None else [])
    x0, x1 = (min(xvals), max(xvals)) if xvals else (0.0, 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 1.0, x1 + 1.0
    integer_x = all(v.is_integer() for v in xvals)

    ml, mr, mt, mb = 56, 16, 30, 40
    pw, ph = width - ml - mr, height - mt - mb

    def px(v: float) -> float:
        return ml + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return mt + (y1 - v) / (y1 - y0) * ph

    out = _open_svg(width, height, css_class, title, attrs)
    # grid and axes
    yt = nice_ticks(y0, y1, 5)
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    out.append('<g class="grid">')
    for t in yt:
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(py(t))}" y2="{_f(py(t))}"/>')
    out.append("</g><g class=\"axis\">")
    for t in yt:
        out.append(f'<text x="{ml - 6}" y="{_f(py(t) + 4)}" text-anchor="end">{escape(_label(t, ystep))}</text>')
    xt = nice_ticks(x0, x1, min(8, max(2, pw // 70)), integer=integer_x)
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    for t in xt:
        out.append(f'<line x1="{_f(px(t))}" x2="{_f(px(t))}" y1="{mt + ph}" y2="{mt + ph + 4}"/>')
        out.append(f'<text x="{_f(px(t))}" y="{mt + ph + 16}" text-anchor="middle">{escape(_label(t, xstep))}</text>')
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}"/>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis-label">'
               f"{escape(_cut(x_label, 40))}</text>")
    if y_label:
        out.append(f'<text x="{ml}" y="{mt - 12}" text-anchor="start" class="axis-label">{escape(_cut(y_label, 30))}</text>')
    out.append("</g>")

    # reference bands and lines (under the metric)
    for r in refs:
        rv, rlo, rhi = finite(r.value), finite(r.lo), finite(r.hi)
        assert rv is not None
        css = escape(r.css)
        if rlo is not None and rhi is not None and rhi >= rlo:
            out.append(f'<rect class="{css}-band" x="{ml}" width="{pw}" y="{_f(py(rhi))}" '
                       f'height="{_f(max(py(rlo) - py(rhi), 0.5))}"/>')
        out.append(f'<line class="{css}" x1="{ml}" x2="{ml + pw}" y1="{_f(py(rv))}" y2="{_f(py(rv))}">'
                   f"<title>{escape(r.label)}: {escape(_label(rv, ystep / 100))}</title></line>")
    if mx is not None:
        out.append(f'<line class="marker" x1="{_f(px(mx))}" x2="{_f(px(mx))}" y1="{mt}" y2="{mt + ph}"/>')
        out.append(f'<text class="marker-label" x="{_f(px(mx) + 4)}" y="{mt + 12}">'
                   f"{escape(marker_label)}</text>")

    # the interval band, one path per stretch of points with both bounds
    segs = []
    for run in _runs(pts, lambda p: p[2] is not None and p[3] is not None):
        top = [(px(p[0]), py(p[3])) for p in run if p[3] is not None]
        bot = [(px(p[0]), py(p[2])) for p in reversed(run) if p[2] is not None]
        if len(run) == 1:   # a lone point: a narrow bar
            (xa, ya), (_, yb) = top[0], bot[0]
            top, bot = [(xa - 3, ya), (xa + 3, ya)], [(xa + 3, yb), (xa - 3, yb)]
        segs.append("M" + " L".join(f"{_f(a)},{_f(b)}" for a, b in top + bot) + " Z")
    if segs:
        out.append(f'<path class="band" d="{" ".join(segs)}"/>')

    # the metric line and its points
    line = [[(p[0], p[1]) for p in run if p[1] is not None] for run in _runs(pts, lambda p: p[1] is not None)]
    paths = ["M" + " L".join(f"{_f(px(a))},{_f(py(b))}" for a, b in run) for run in line if len(run) > 1]
    if paths:
        out.append(f'<path class="line" d="{" ".join(paths)}"/>')
    shown = [p for p in pts if p[1] is not None]
    if len(shown) <= 80:
        out.append('<g class="points">')
        for xv, yv_, lo_, hi_ in shown:
            assert yv_ is not None
            tip = f"{x_label} {_label(xv, xstep)}: {_label(yv_, ystep / 100)}"
            if lo_ is not None and hi_ is not None:
                tip += f" [{_label(lo_, ystep / 100)}, {_label(hi_, ystep / 100)}]"
            out.append(f'<circle cx="{_f(px(xv))}" cy="{_f(py(yv_))}" r="3">'
                       f"<title>{escape(tip)}</title></circle>")
        out.append("</g>")

    # legend, top right
    items = [("line", y_label or "metric")] + ([("band", "interval")] if segs else [])
    items = [(css, _cut(text, 24)) for css, text in items + [(r.css, r.label) for r in refs]]
    lx = width - mr
    out.append('<g class="legend">')
    for css, text in reversed(items):
        w = 26 + len(text) * 6.2
        lx -= w
        if css == "band":
            out.append(f'<rect class="band" x="{_f(lx)}" y="{mt - 24}" width="16" height="10"/>')
        else:
            out.append(f'<line class="{escape(css)}" x1="{_f(lx)}" x2="{_f(lx + 16)}" y1="{mt - 19}" y2="{mt - 19}"/>')
        out.append(f'<text x="{_f(lx + 20)}" y="{mt - 15}">{escape(text)}</text>')
    out.append("</g></svg>")
    return "".join(out)


def grouped_bars(levels: Sequence[object], reference: Sequence[object], current: Sequence[object], *,
                 title: str = "distribution", series: tuple[str, str] = ("reference", "current"),
                 width: int = 540, height: int = 250, percent: bool = True,
                 css_class: str = "chart dist-chart", attrs: Mapping[str, str] | None = None) -> str:
    """Two bars per level: ``reference[i]`` (class "bar reference") and ``current[i]`` ("bar current").

    A missing or non-finite value draws no bar; levels beyond the given values count as missing.
    Labels longer than the room under their group are cut (the full text is in the tooltip).
    """
    names = [str(v) for v in levels]
    n = len(names)
    ref = [finite(reference[i]) if i < len(reference) else None for i in range(n)]
    cur = [finite(current[i]) if i < len(current) else None for i in range(n)]
    vals = [v for v in ref + cur if v is not None]
    vmin, vmax = min(vals + [0.0]), max(vals + [0.0])
    if vmax <= vmin:
        vmax = vmin + 1.0
    yt = nice_ticks(vmin, vmax, 4)
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    if yt[-1] < vmax - ystep * 1e-9:   # round the top up to a tick
        yt.append(yt[-1] + ystep)
    if yt[0] > vmin + ystep * 1e-9:
        yt.insert(0, yt[0] - ystep)
    vmax, vmin = max(vmax, yt[-1]), min(vmin, yt[0])

    rotate = n > 6
    longest = max((len(s) for s in names), default=0)
    mb = 24 + (min(longest, 16) * 5 if rotate else 0)
    ml, mr, mt = 48, 12, 28
    pw, ph = width - ml - mr, height - mt - mb
    group = pw / max(n, 1)
    bar = max(min(group * 0.38, 28.0), 0.6)

    def py(v: float) -> float:
        return mt + (vmax - v) / (vmax - vmin) * ph

    out = _open_svg(width, height, css_class, title, attrs)
    out.append('<g class="grid">')
    for t in yt:
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(py(t))}" y2="{_f(py(t))}"/>')
    out.append('</g><g class="axis">')
    for t in yt:
        out.append(f'<text x="{ml - 6}" y="{_f(py(t) + 4)}" text-anchor="end">'
                   f"{escape(_label(t, ystep, percent))}</text>")
    base = py(max(vmin, 0.0)) if vmin <= 0.0 <= vmax else py(vmin)
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(base)}" y2="{_f(base)}"/>')
    every = max(1, math.ceil(n / max(1, pw // (_FONT_PX + 2)))) if rotate else 1
    room = 16 if rotate else max(3, int(group / 6.2))
    for i, name in enumerate(names):
        if i % every:
            continue
        cx = ml + group * (i + 0.5)
        text = f"{escape(_cut(name, room))}<title>{escape(name)}</title>"
        if rotate:
            ty = mt + ph + 12
            out.append(f'<text x="{_f(cx)}" y="{_f(ty)}" text-anchor="end" '
                       f'transform="rotate(-35 {_f(cx)} {_f(ty)})">{text}</text>')
        else:
            out.append(f'<text x="{_f(cx)}" y="{_f(mt + ph + 15)}" text-anchor="middle">{text}</text>')
    out.append("</g><g class=\"bars\">")

    def fmt(v: float | None) -> str:
        if v is None:
            return "n/a"
        return f"{v * 100:.1f}%" if percent else f"{v:.4g}"

    for i, name in enumerate(names):
        cx = ml + group * (i + 0.5)
        tip = f"{name}: {series[0]} {fmt(ref[i])}, {series[1]} {fmt(cur[i])}"
        for k, (css, v) in enumerate((("reference", ref[i]), ("current", cur[i]))):
            if v is None:
                continue
            x = cx - bar if k == 0 else cx
            top, bottom = min(py(v), base), max(py(v), base)
            out.append(f'<rect class="bar {css}" x="{_f(x)}" y="{_f(top)}" width="{_f(bar)}" '
                       f'height="{_f(max(bottom - top, 0.0))}"><title>{escape(tip)}</title></rect>')
    out.append("</g>")
    # legend
    lx = width - mr - 170
    out.append('<g class="legend">')
    for k, (css, text) in enumerate((("reference", series[0]), ("current", series[1]))):
        x = lx + k * 85
        out.append(f'<rect class="swatch {css}" x="{x}" y="{mt - 22}" width="10" height="10"/>'
                   f'<text x="{x + 14}" y="{mt - 13}">{escape(text)}</text>')
    out.append("</g></svg>")
    return "".join(out)
