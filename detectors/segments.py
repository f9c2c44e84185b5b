"""Performance per segment: a configured column's values (numeric columns cut at reference
quantiles) and pairs of columns, each with its support, so a small segment is marked rather than
reported as a drop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Self

import numpy as np

from detectors._checks import check_int
from detectors._compat import fit_method
from detectors.performance import PerformanceResult, _prepare, classification_performance

__all__ = ["NULL_CATEGORY", "UNSEEN_CATEGORY", "SegmentPerformance", "SegmentSpec", "segment_performance"]

NULL_CATEGORY = "__null__"
UNSEEN_CATEGORY = "__unseen__"


def _fmt(x: float) -> str:
    return "-inf" if x == -np.inf else "inf" if x == np.inf else f"{x:.6g}"


def _legacy_fit(cls: type[SegmentSpec], reference: Any, columns: Sequence[str], n_bins: int = 4) -> SegmentSpec:
    """The old classmethod spelling ``SegmentSpec.fit(reference, columns, n_bins)``."""
    return cls(tuple(columns), n_bins).fit(reference)


@dataclass(slots=True)
class SegmentSpec:
    """Segment definitions remembered from the reference.

    Numeric columns are cut at reference quantiles (``n_bins`` bins, duplicate edges dropped) and
    labelled ``col=[a, b)``; other columns use their reference categories, labelled ``col=value``.
    Window values outside the reference categories fall in ``col=__unseen__``, missing values in
    ``col=__null__``, so the number of segments stays bounded. ``edges`` and ``categories`` are
    what :meth:`fit` learnt.

    >>> import pandas as pd
    >>> spec = SegmentSpec(("age", "city"), n_bins=2).fit(pd.DataFrame({"age": [20, 30, 40, 50], "city": list("abab")}))
    >>> spec.edges, spec.categories
    ({'age': (35.0,)}, {'city': ('a', 'b')})
    >>> [v.tolist() for v in spec.assign(pd.DataFrame({"age": [25, 60], "city": ["a", "z"]})).values()]
    [['age=[-inf, 35)', 'age=[35, inf)'], ['city=a', 'city=__unseen__']]
    """

    columns: tuple[str, ...]
    n_bins: int = 4
    edges: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.columns, str):
            raise ValueError(f"columns must be a sequence of column names, got {self.columns!r}")
        self.columns = tuple(self.columns)
        check_int("n_bins", self.n_bins, 1)

    @fit_method(_legacy_fit)
    def fit(self, reference: Any) -> Self:
        """Learn the quantile edges (numeric columns) and categories (others) of ``reference``."""
        import pandas as pd

        columns, n_bins = self.columns, self.n_bins
        frame = reference if isinstance(reference, pd.DataFrame) else pd.DataFrame(reference)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"segment columns not in the reference: {missing}")
        edges: dict[str, tuple[float, ...]] = {}
        cats: dict[str, tuple[str, ...]] = {}
        for col in columns:
            s = frame[col]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                v = s.to_numpy(dtype=np.float64)
                v = v[np.isfinite(v)]
                qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(v) else np.zeros(0)
                edges[col] = tuple(float(e) for e in np.unique(qs))
            else:
                cats[col] = tuple(sorted({str(x) for x in s.dropna().unique()}))
        self.edges, self.categories = edges, cats
        return self

    def assign(self, frame: Any) -> dict[str, np.ndarray]:
        """Per column, every row's segment label (``"col=value"``) as an object array."""
        import pandas as pd

        frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
        unfitted = [c for c in self.columns if c not in self.edges and c not in self.categories]
        if unfitted:
            raise RuntimeError(f"SegmentSpec is not fitted for columns {unfitted}: call fit(reference) first")
        out: dict[str, np.ndarray] = {}
        for col in self.columns:
            s = frame[col]
            null = s.isna().to_numpy()
            if col in self.edges:
                e = np.asarray(self.edges[col])
                bounds = np.r_[-np.inf, e, np.inf]
                names = np.array([f"{col}=[{_fmt(a)}, {_fmt(b)})" for a, b in zip(bounds[:-1], bounds[1:])],
                                 dtype=object)
                idx = np.searchsorted(e, s.to_numpy(dtype=np.float64), side="right")
                lab = names[idx]
            else:
                known = set(self.categories[col])
                vals = s.astype(str).to_numpy(dtype=object)
                lab = np.array([f"{col}={v}" if v in known else f"{col}={UNSEEN_CATEGORY}" for v in vals],
                               dtype=object) if len(vals) else np.zeros(0, dtype=object)
            lab[null] = f"{col}={NULL_CATEGORY}"
            out[col] = lab
        return out


@dataclass(frozen=True, slots=True)
class SegmentPerformance:
    """Performance of one segment: ``"all"``, ``"col=value"`` or ``"col1=v1&col2=v2"``.

    >>> sp = SegmentPerformance("city=a", ("city",), 80, True,
    ...                         {"accuracy": PerformanceResult("accuracy", 0.9, 0.81, 0.95, 80, True)})
    >>> sp.to_dict()["metrics"]["accuracy"]["value"], SegmentPerformance.from_dict(sp.to_dict()) == sp
    (0.9, True)
    """

    segment: str
    columns: tuple[str, ...]
    n: int
    support_ok: bool
    metrics: Mapping[str, PerformanceResult]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; ``metrics`` as ``{metric: PerformanceResult.to_dict()}``."""
        return {"segment": self.segment, "columns": list(self.columns), "n": int(self.n),
                "support_ok": bool(self.support_ok), "metrics": {m: r.to_dict() for m, r in self.metrics.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SegmentPerformance:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["segment"]), tuple(d["columns"]), int(d["n"]), bool(d["support_ok"]),
                   {m: PerformanceResult.from_dict(r) for m, r in d["metrics"].items()})


def segment_performance(frame: Any, y_true: Any, y_pred: Any, score: Any = None, scores: Any = None, *,
                        spec: SegmentSpec, labels: Sequence[Any] | None = None, min_support: int = 50,
                        pairs: bool = True, metrics: Iterable[str] | None = None, confidence: float = 0.95,
                        n_boot: int = 0, seed: int = 0) -> tuple[SegmentPerformance, ...]:
    """Metrics for all rows, every single-column segment and (``pairs``) every column pair.

    ``frame`` (DataFrame or mapping of columns) holds the segment columns, row-aligned with the
    labels. Segments with fewer than ``min_support`` rows are returned with ``support_ok=False``
    and must not be reported as drops. Intervals as in :func:`classification_performance`
    (``n_boot=0`` by default: analytic intervals only, bootstrap-only metrics get NaN bounds).
    Segments with no rows are not listed.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"city": ["a"] * 60 + ["b"] * 40})
    >>> spec = SegmentSpec(("city",)).fit(frame)
    >>> res = segment_performance(frame, [0, 1] * 50, [0, 1] * 30 + [1, 1] * 20, spec=spec, min_support=50)
    >>> [(r.segment, r.n, r.support_ok, r.metrics["accuracy"].value) for r in res]
    [('all', 100, True, 0.8), ('city=a', 60, True, 1.0), ('city=b', 40, False, 0.5)]
    """
    import pandas as pd

    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    yt = np.asarray(y_true)
    if len(frame) != len(yt):
        raise ValueError(f"frame has {len(frame)} rows but y_true has {len(yt)}")
    yp = None if y_pred is None else np.asarray(y_pred)
    _, lab = _prepare(yt, yp, score, scores, labels)  # validates once, fixes the label set
    sc = None if score is None else np.asarray(score, dtype=np.float64)
    scs = None if scores is None else np.asarray(scores, dtype=np.float64)
    metric_list = None if metrics is None else list(metrics)
    seg_labels = spec.assign(frame)

    def one(name: str, cols: tuple[str, ...], mask: np.ndarray | None) -> SegmentPerformance:
        sel = slice(None) if mask is None else mask
        res = classification_performance(
            yt[sel], None if yp is None else yp[sel], None if sc is None else sc[sel],
            None if scs is None else scs[sel], lab, metrics=metric_list, confidence=confidence,
            n_boot=n_boot, seed=seed, min_support=min_support)
        n = len(yt) if mask is None else int(mask.sum())
        return SegmentPerformance(name, cols, n, n >= min_support, res)

    out = [one("all", (), None)]
    groups = [(c,) for c in spec.columns]
    if pairs:
        groups += list(combinations(spec.columns, 2))
    for cols in groups:
        keys = seg_labels[cols[0]] if len(cols) == 1 else seg_labels[cols[0]] + "&" + seg_labels[cols[1]]
        codes, uniques = pd.factorize(keys, sort=True)
        for i, name in enumerate(uniques):
            out.append(one(str(name), cols, codes == i))
    return tuple(out)
