"""Training-serving skew: how far serving values stray from what the model was trained on.

Unlike drift tests (is the *distribution* different?), these name concrete pipeline faults:
values out of the training range, categories never seen in training, nulls where the
reference had few, and a feature that arrives rescaled (cents instead of euros: x100).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from detectors.binning import BinCounts
from detectors.result import as_float, as_optional_float
from detectors.schema import ColumnSchema
from detectors.univariate import jensen_shannon_bins

__all__ = ["SkewReport", "value_skew", "scale_factor", "linf_distance"]

_SCALES = (10.0, 100.0, 1000.0, 1e6)


def scale_factor(reference: ColumnSchema, values: np.ndarray, tolerance: float = 0.15) -> float | None:
    """The power-of-ten factor (10, 100, 1000, 1e6 or its inverse) by which ``values`` look
    rescaled relative to the reference, or ``None``.

    Compares the median absolute value of the window with the reference median absolute value
    (from the reference quantiles): a ratio within ``tolerance`` (in log10 units) of a known
    factor is named. Robust to a minority of outliers; misleads when the distribution itself
    moved by about that factor (then it is drift, and reported as both).

    >>> col = ColumnSchema("price", "numeric", "float64", 0.0, 100, 1.0, 100.0, 50.0, 20.0, {"p50": 50.0})
    >>> scale_factor(col, np.array([4900.0, 5000.0, 5100.0]))
    100.0
    """
    if reference.kind != "numeric" or "p50" not in reference.quantiles:
        return None
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    ref_med = abs(reference.quantiles["p50"])
    if v.size == 0 or ref_med == 0:
        return None
    win_med = float(np.median(np.abs(v)))
    if win_med == 0:
        return None
    ratio = np.log10(win_med / ref_med)
    for s in _SCALES:
        target = np.log10(s)
        if abs(ratio - target) <= tolerance:
            return s
        if abs(ratio + target) <= tolerance:
            return 1.0 / s
    return None


def linf_distance(reference: BinCounts, window: BinCounts) -> float:
    """L-infinity distance between category frequencies: the largest change in any one
    category's share (TFDV's skew comparator for categorical features).

    >>> from detectors.binning import CategoricalBins
    >>> b = CategoricalBins().fit(np.array(list("aabb"), dtype=object))
    >>> linf_distance(b.summarise(np.array(list("aabb"), dtype=object)), b.summarise(np.array(list("aaab"), dtype=object)))
    0.25
    """
    if reference.total == 0 or window.total == 0:
        raise ValueError("cannot compare an empty summary (no non-null values)")
    return float(np.max(np.abs(reference.counts / reference.total - window.counts / window.total)))


@dataclass(frozen=True, slots=True)
class SkewReport:
    """Skew of one feature over one window; shares are of the window's records.

    ``scale_factor``, ``linf`` and ``js`` are None where they do not apply (no rescaling seen;
    numeric feature or no bins given).

    >>> r = SkewReport("price", 4, 0.5, 0.0, 0.25, 0.25, 100.0, None, None)
    >>> r.to_dict()["scale_factor"], SkewReport.from_dict(r.to_dict()) == r
    (100.0, True)
    """

    feature: str
    n: int
    out_of_range_share: float
    unseen_category_share: float
    null_share: float
    null_rate_change: float  # window null share minus reference null rate
    scale_factor: float | None
    linf: float | None
    js: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field."""
        return {"feature": self.feature, "n": int(self.n), "out_of_range_share": float(self.out_of_range_share),
                "unseen_category_share": float(self.unseen_category_share), "null_share": float(self.null_share),
                "null_rate_change": float(self.null_rate_change),
                "scale_factor": as_optional_float(self.scale_factor), "linf": as_optional_float(self.linf),
                "js": as_optional_float(self.js)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SkewReport:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["feature"]), int(d["n"]), as_float(d["out_of_range_share"]),
                   as_float(d["unseen_category_share"]), as_float(d["null_share"]), as_float(d["null_rate_change"]),
                   as_optional_float(d["scale_factor"]), as_optional_float(d["linf"]), as_optional_float(d["js"]))


def value_skew(
    reference: ColumnSchema,
    values: np.ndarray,
    reference_bins: BinCounts | None = None,
    window_bins: BinCounts | None = None,
) -> SkewReport:
    """Skew of ``values`` against the reference column schema (vectorised over the window).

    Category frequency distances need the reference-binned counts of both sides.

    >>> col = ColumnSchema("price", "numeric", "float64", 0.0, 100, 1.0, 100.0, 50.0, 20.0, {"p50": 50.0})
    >>> r = value_skew(col, np.array([5000.0, 4900.0, np.nan, 50.0]))
    >>> r.out_of_range_share, r.null_share, r.scale_factor
    (0.5, 0.25, 100.0)
    """
    v = np.asarray(values)
    n = int(v.size)
    if n == 0:
        return SkewReport(reference.name, 0, 0.0, 0.0, 0.0, 0.0, None, None, None)
    oor = unseen = 0
    if reference.kind == "numeric":
        f = v.astype(float)
        null = np.isnan(f)
        oor = int(((f[~null] < reference.min) | (f[~null] > reference.max)).sum())
        scale = scale_factor(reference, f)
    else:
        null = pd.isna(v)
        if not reference.categories_capped:
            known = np.array(reference.categories, dtype=object)
            unseen = int((~np.isin(v[~null].astype(str), known)).sum())
        scale = None
    linf = js = None
    if reference_bins is not None and window_bins is not None and window_bins.total and reference.kind == "categorical":
        linf = linf_distance(reference_bins, window_bins)
        js = jensen_shannon_bins(reference_bins, window_bins)
    null_share = float(null.sum()) / n
    return SkewReport(reference.name, n, oor / n, unseen / n, null_share, null_share - reference.null_rate, scale, linf, js)
