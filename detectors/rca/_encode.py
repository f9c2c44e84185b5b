"""Columns to small integer slice levels, fixed from the reference (and the window's frequent values).

Each column is encoded once to ``int8``/``int16`` codes so slice statistics are ``np.bincount``
calls, never per-row Python:

* numeric: quantile bins of the *reference* (:class:`detectors.binning.NumericBins` edges;
  values outside the reference range fall in the outer bins, ``value == edge`` in the upper
  bin), labelled like :mod:`detectors.segments` (``[-inf, 35)``, ``[35, 50)``, ``[50, inf)``);
  missing values (NaN, None, and window values that are not numbers) get the level ``__null__``.
* categorical: one level per value (compared as ``str(value)``) that reaches the minimum support
  in the reference *or* in the window, at most ``max_levels`` of them (most frequent first);
  the rest, including rare unseen values, are pooled in ``__other__``; missing values in
  ``__null__``. A frequent unseen category thus stays visible as its own slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.binning import OTHER, NumericBins

__all__ = ["NULL", "OTHER", "ColumnBins", "fit_column"]

NULL = "__null__"  # same spelling as detectors.segments.NULL_CATEGORY


def _fmt(x: float, digits: int) -> str:
    return "-inf" if x == -np.inf else "inf" if x == np.inf else f"{x:.{digits}g}"


def _interval_labels(edges: np.ndarray) -> tuple[str, ...]:
    for digits in (6, 17):  # 17 significant digits always tell distinct float64 edges apart
        bounds = [-np.inf, *edges.tolist(), np.inf]
        labels = tuple(f"[{_fmt(a, digits)}, {_fmt(b, digits)})" for a, b in zip(bounds[:-1], bounds[1:]))
        if len(set(labels)) == len(labels):
            break
    return labels


def _as_float(values: pd.Series) -> np.ndarray:
    """Numeric values as float64; anything that is not a number becomes NaN (the null level)."""
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _factorize(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(code per row, -1 for null; the distinct non-null values as ``str``)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = values.cat.codes.to_numpy().astype(np.intp)
        return raw, [str(c) for c in values.cat.categories]
    raw, uniques = pd.factorize(values, use_na_sentinel=True)
    return raw.astype(np.intp, copy=False), [str(u) for u in np.asarray(uniques, dtype=object)]


def _code_dtype(k: int) -> type[np.signedinteger]:
    return np.int8 if k <= np.iinfo(np.int8).max else np.int16


@dataclass(frozen=True, slots=True)
class ColumnBins:
    """How one column is cut into slice levels; ``levels[code]`` is the predicate value.

    Numeric: ``edges`` are the interior reference-quantile edges and ``levels`` the
    ``len(edges) + 1`` interval labels followed by ``__null__``. Categorical: ``edges`` is
    empty and ``levels`` the named values (sorted) followed by ``__other__`` and ``__null__``.

    >>> b = ColumnBins("age", "numeric", ("[-inf, 35)", "[35, inf)", "__null__"), (35.0,))
    >>> b.codes(pd.Series([20.0, 35.0, None])).tolist()
    [0, 1, 2]
    >>> ColumnBins.from_dict(b.to_dict()) == b
    True
    """

    column: str
    kind: Literal["numeric", "categorical"]
    levels: tuple[str, ...]
    edges: tuple[float, ...] = ()

    @property
    def null_code(self) -> int:
        return len(self.levels) - 1

    def codes(self, values: pd.Series) -> np.ndarray:
        """Level code per value (``int8``, or ``int16`` past 127 levels)."""
        dtype = _code_dtype(len(self.levels))
        if self.kind == "numeric":
            v = _as_float(values)
            out = np.searchsorted(np.asarray(self.edges, dtype=np.float64), v, side="right").astype(dtype)
            out[np.isnan(v)] = self.null_code
            return out
        raw, uniques = _factorize(values)
        return self.codes_from_factorized(raw, uniques)

    def codes_from_factorized(self, raw: np.ndarray, uniques: list[str]) -> np.ndarray:
        """Codes from :func:`_factorize` output (one lookup per distinct value, not per row)."""
        index = {label: i for i, label in enumerate(self.levels[:-2])}
        other = len(self.levels) - 2
        lookup = np.fromiter((index.get(u, other) for u in uniques), np.intp, len(uniques))
        lookup = np.append(lookup, self.null_code)  # raw == -1 (null) picks the last entry
        return lookup[raw].astype(_code_dtype(len(self.levels)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field."""
        return {"column": self.column, "kind": self.kind, "levels": list(self.levels),
                "edges": [float(e) for e in self.edges]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnBins:
        """Inverse of :meth:`to_dict`."""
        kind = str(d["kind"])
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"kind must be 'numeric' or 'categorical', got {kind!r}")
        return cls(str(d["column"]), kind, tuple(str(v) for v in d["levels"]),  # type: ignore[arg-type]
                   tuple(float(e) for e in d.get("edges", ())))


def _counts_by_label(raw: np.ndarray, uniques: list[str]) -> dict[str, int]:
    counts = np.bincount(raw[raw >= 0], minlength=len(uniques))
    out: dict[str, int] = {}
    for label, c in zip(uniques, counts.tolist()):  # 1 and "1" both read "1": add them up
        if c:
            out[label] = out.get(label, 0) + c
    return out


def fit_column(name: str, reference: pd.Series, window: pd.Series, *, numeric: bool, n_bins: int,
               ref_support: int, win_support: int, max_levels: int
               ) -> tuple[ColumnBins, np.ndarray, np.ndarray]:
    """Fit one column's levels and encode both frames: ``(bins, window codes, reference codes)``."""
    if numeric:
        ref = _as_float(reference)
        finite = ref[~np.isnan(ref)]
        edges = NumericBins(n_bins=n_bins).fit(finite).edges if finite.size else np.empty(0)
        bins = ColumnBins(name, "numeric", (*_interval_labels(edges), NULL), tuple(edges.tolist()))
        return bins, bins.codes(window), bins.codes(reference)
    w_raw, w_uniques = _factorize(window)
    r_raw, r_uniques = _factorize(reference)
    w_counts, r_counts = _counts_by_label(w_raw, w_uniques), _counts_by_label(r_raw, r_uniques)
    keep = {v for v, c in r_counts.items() if c >= ref_support}
    keep |= {v for v, c in w_counts.items() if c >= win_support}
    keep -= {OTHER, NULL}  # a value spelt like a pooled level is pooled with it
    if len(keep) > max_levels:  # most frequent in the window first (the slices live there)
        ranked = sorted(keep, key=lambda v: (-w_counts.get(v, 0), -r_counts.get(v, 0), v))
        keep = set(ranked[:max_levels])
    bins = ColumnBins(name, "categorical", (*sorted(keep), OTHER, NULL))
    return bins, bins.codes_from_factorized(w_raw, w_uniques), bins.codes_from_factorized(r_raw, r_uniques)
