"""The segments an analysis names (``"salary_range=20K - 40K €"``, ``"a=x & b=[10, 20)"``), parsed
back into predicates and row masks of any frame: plain values, ``[lo, hi)`` intervals with
``-inf``/``inf``, ``__null__``, and `` & `` inside names or values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["NULL", "OTHER", "Predicate", "SegmentError", "parse_segment", "segment_mask"]

NULL, OTHER = "__null__", "__other__"   # the RCA's level names (detectors.rca._encode)

_INTERVAL = re.compile(r"^\[\s*([^,\[\]()]+?)\s*,\s*([^,\[\]()]+?)\s*\)$")


class SegmentError(ValueError):
    """A segment label that names no known column or cannot be turned back into a row mask."""




@dataclass(frozen=True, slots=True)
class Predicate:
    """``column=value``; ``interval`` is ``(lo, hi)`` when the value reads ``[lo, hi)``."""

    column: str
    value: str
    interval: tuple[float, float] | None = None


def parse_segment(segment: str, columns: Iterable[str]) -> tuple[Predicate, ...]:
    """Split ``"a=x & b=[10, 20)"`` into predicates on the known ``columns``. Column names and
    values may contain ``" & "`` or ``"="``: a new predicate starts only at ``" & <column>="``.

    >>> a, b = parse_segment("salary_range=20K - 40K € & car_value=[-inf, 1.5e4)", ["salary_range", "car_value"])
    >>> a
    Predicate(column='salary_range', value='20K - 40K €', interval=None)
    >>> b.interval
    (-inf, 15000.0)
    """
    text = str(segment)
    known = sorted({str(c) for c in columns}, key=len, reverse=True)

    def column_at(i: int) -> str | None:
        return next((c for c in known if text.startswith(f"{c}=", i)), None)

    preds: list[tuple[str, str]] = []
    pos = 0
    while True:
        col = column_at(pos)
        if col is None:
            raise SegmentError(f"segment {text!r}: {text[pos:]!r} does not start with a known column and '='")
        start = end = pos + len(col) + 1
        while (end := text.find(" & ", end)) >= 0 and column_at(end + 3) is None:
            end += 3
        if end < 0:
            preds.append((col, text[start:]))
            break
        preds.append((col, text[start:end]))
        pos = end + 3
    out = []
    for col, value in preds:
        interval = None
        if m := _INTERVAL.match(value):
            try:
                interval = (float(m.group(1)), float(m.group(2)))
            except ValueError:
                interval = None
        out.append(Predicate(col, value, interval))
    return tuple(out)


def _predicate_mask(frame: pd.DataFrame, p: Predicate) -> np.ndarray:
    s = frame[p.column]
    if p.value == NULL:
        return s.isna().to_numpy()
    if p.value == OTHER:
        raise SegmentError(f"{p.column}={OTHER} pools the values the RCA did not name: it cannot be rebuilt")
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    text = None if numeric else (s.astype(str).to_numpy(dtype=object) == p.value) & s.notna().to_numpy()
    if p.interval is not None and (numeric or not text.any()):   # type: ignore[union-attr]
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        lo, hi = p.interval
        return (x >= lo) & (x < hi)
    if numeric:
        try:
            v = float(p.value)
        except ValueError:
            return np.zeros(len(s), dtype=bool)
        return s.to_numpy(dtype=np.float64, na_value=np.nan) == v
    return text  # type: ignore[return-value]


def segment_mask(frame: pd.DataFrame, segment: str) -> np.ndarray:
    """Boolean row mask of a segment label as the RCA writes it: plain values compared as text
    (numerically in numeric columns), ``[lo, hi)`` intervals (``-inf``/``inf`` allowed) as
    ``lo <= x < hi``, ``__null__`` as missing.

    >>> f = pd.DataFrame({"a": ["x", "y", "x"], "b": [5.0, 15.0, 25.0]})
    >>> segment_mask(f, "a=x & b=[10, inf)").tolist()
    [False, False, True]
    """
    return _mask(frame, parse_segment(segment, frame.columns))


def _mask(frame: pd.DataFrame, preds: Sequence[Predicate]) -> np.ndarray:
    """All predicates hold; no row matches where the frame lacks one of their columns."""
    mask = np.ones(len(frame), dtype=bool)
    for p in preds:
        if p.column not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        mask &= _predicate_mask(frame, p)
    return mask
