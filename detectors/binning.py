"""Reference-binned, mergeable summaries of one feature.

Edges (numeric) and categories (categorical) are fixed from the *reference* at fit time, never
from a window, so summaries of windows, partitions and replicas add up exactly and memory per
window is O(bins) whatever the window size. Histogram tests (chi-square, PSI, Jensen-Shannon,
Hellinger) are computed exactly from these counts; KS and Wasserstein within a stated bound
(see :mod:`detectors.univariate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd

from detectors._checks import check_int

__all__ = ["BinCounts", "NumericBins", "CategoricalBins", "OTHER"]

OTHER = "__other__"


@dataclass(slots=True)
class BinCounts:
    """Counts of one feature on fixed bins, plus the number of nulls.

    ``edges`` are the interior numeric edges or the tuple of known categories; ``counts`` has
    ``len(edges) + 1`` entries: numeric bins ``(-inf, e0), [e0, e1), ..., [e_k, inf)``, or one
    count per category followed by the "other" bucket (unseen or capped categories).

    >>> a = NumericBins(n_bins=4).fit(np.arange(100.0)).summarise(np.array([1.0, 50.0]))
    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0)).summarise(np.array([99.0]))
    >>> (a.__iadd__(b)).counts.tolist()
    [1, 0, 1, 1]
    """

    edges: np.ndarray
    counts: np.ndarray
    nulls: int = 0

    def __iadd__(self, other: BinCounts) -> BinCounts:
        if self.edges.shape != other.edges.shape or not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge BinCounts built on different edges")
        self.counts += other.counts
        self.nulls += other.nulls
        return self

    def __add__(self, other: BinCounts) -> BinCounts:
        out = self.copy()
        out += other
        return out

    @property
    def total(self) -> int:
        """Non-null values counted."""
        return int(self.counts.sum())

    def copy(self) -> BinCounts:
        return BinCounts(self.edges, self.counts.copy(), self.nulls)

    def empty_like(self) -> BinCounts:
        return BinCounts(self.edges, np.zeros_like(self.counts), 0)

    def state(self) -> dict[str, Any]:
        """Plain JSON-able state (counts only; edges belong to the fitted binner)."""
        return {"counts": self.counts.tolist(), "nulls": self.nulls}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], edges: np.ndarray) -> BinCounts:
        """Inverse of :meth:`state`, given the edges of the binner it was counted on
        (``binner.edges``: the state does not repeat them).

        >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
        >>> s = b.summarise(np.array([1.0, np.nan]))
        >>> BinCounts.from_state(s.state(), b.edges).counts.tolist() == s.counts.tolist()
        True
        """
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != (len(edges) + 1,):
            raise ValueError(f"state has {counts.size} counts, edges give {len(edges) + 1} bins")
        return cls(edges, counts, int(state["nulls"]))


def _is_null(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "iub":
        return np.zeros(values.shape, dtype=bool)
    return pd.isna(values)


@dataclass(slots=True)
class NumericBins:
    """Quantile bins of a numeric reference column.

    ``n_bins`` quantile bins give about equal reference mass per bin (ties merge bins, so a
    discrete column gets fewer); values outside the reference range land in the outer bins.

    >>> b = NumericBins(n_bins=4).fit(np.arange(100.0))
    >>> b.edges.tolist(), b.summarise(np.array([-5.0, 30.0, 500.0, np.nan])).counts.tolist()
    ([24.75, 49.5, 74.25], [1, 1, 0, 1])
    """

    n_bins: int = 20
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        check_int("n_bins", self.n_bins, 2)

    def fit(self, reference: np.ndarray) -> Self:
        ref = np.asarray(reference, dtype=float)
        ref = ref[~np.isnan(ref)]
        if ref.size == 0:
            raise ValueError("cannot fit NumericBins on a reference with no non-null values")
        qs = np.quantile(ref, np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1])
        # Interior edges only; duplicates (discrete data) collapse. Edge = first value of a bin,
        # so [e_i, e_{i+1}) holds the values equal to a repeated quantile.
        self.edges = np.unique(qs)
        if self.edges.size == 0:  # constant column: one edge splits below / at-or-above
            self.edges = np.array([ref[0]])
        return self

    def summarise(self, values: np.ndarray) -> BinCounts:
        v = np.asarray(values, dtype=float)
        n_null = int(np.isnan(v).sum())
        if self.edges.size <= 32:
            # Few edges: one branch-free pass per edge (NaN compares False) is ~3x faster than a
            # binary search per value on large columns; same bins as searchsorted(side="right").
            below = np.fromiter((np.count_nonzero(v < e) for e in self.edges), np.int64, self.edges.size)
            counts = np.diff(below, prepend=0, append=v.size - n_null).astype(np.int64)
        else:
            idx = np.searchsorted(self.edges, v[~np.isnan(v)], side="right")
            counts = np.bincount(idx, minlength=self.edges.size + 1).astype(np.int64)
        return BinCounts(self.edges, counts, n_null)


@dataclass(slots=True)
class CategoricalBins:
    """Known categories of a reference column (the ``max_categories`` most frequent) + "other".

    High-cardinality columns are capped so memory stays bounded; the rest fall in "other".

    >>> b = CategoricalBins(max_categories=2).fit(np.array(list("aaabbc"), dtype=object))
    >>> b.categories.tolist(), b.summarise(np.array(["a", "c", "z", None], dtype=object)).counts.tolist()
    (['a', 'b'], [1, 0, 2])
    """

    max_categories: int = 200
    categories: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    _index: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object), repr=False)
    _codes: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_int("max_categories", self.max_categories, 1)

    def fit(self, reference: np.ndarray | pd.Series) -> Self:
        cats = self._categorical_fit(reference)
        if cats is None:
            ref = pd.Series(np.asarray(reference, dtype=object)).dropna().map(str)
            if ref.empty:
                raise ValueError("cannot fit CategoricalBins on a reference with no non-null values")
            freq = ref.value_counts(sort=True)
            cats = sorted(freq.index[: self.max_categories].tolist())
        self.categories = np.array(cats, dtype=object)
        self._index = pd.Index(cats, dtype=object)
        self._codes = {c: i for i, c in enumerate(cats)}
        return self

    def _categorical_fit(self, reference: np.ndarray | pd.Series) -> list[str] | None:
        """The categories of a pandas categorical without a ``str()`` per value: count the codes,
        key the categories present. Only when every one is kept (at most ``max_categories``):
        the same set the value path finds, with no frequency ties to break; else ``None``."""
        if not (isinstance(reference, pd.Series) and isinstance(reference.dtype, pd.CategoricalDtype)):
            return None
        codes = reference.cat.codes.to_numpy()
        categories = reference.cat.categories.to_numpy(dtype=object)
        counts = np.bincount(codes[codes >= 0], minlength=categories.size)
        present = {str(c) for c, n in zip(categories, counts) if n > 0}
        if not present:
            raise ValueError("cannot fit CategoricalBins on a reference with no non-null values")
        return sorted(present) if len(present) <= self.max_categories else None

    @property
    def edges(self) -> np.ndarray:
        return self.categories

    def codes(self, values: np.ndarray | pd.Series) -> np.ndarray:
        """Category index per value; ``len(categories)`` for other, ``-1`` for null."""
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            # pandas categoricals: look up the (few) categories, not the values
            lookup = self._lookup(values.cat.categories.to_numpy(dtype=object))
            raw = values.cat.codes.to_numpy()
            return np.where(raw >= 0, lookup[raw] if lookup.size else -1, -1).astype(np.int64)
        # Hash every value once, then look up only the distinct ones (str() keys make 1 / "1" /
        # True agree with the reference, which was fitted the same way); nulls factorize to -1.
        v = np.asarray(values)
        raw, uniques = pd.factorize(v if v.dtype.kind in "biufO" else v.astype(object))
        lookup = self._lookup(np.asarray(uniques, dtype=object))
        return np.where(raw >= 0, lookup[raw] if lookup.size else -1, -1).astype(np.int64)

    def _lookup(self, values: np.ndarray) -> np.ndarray:
        if values.size <= 64:  # a window's few distinct values: dict lookups beat array setup
            other, index = self.categories.size, self._codes
            return np.fromiter((index.get(str(v), other) for v in values), np.int64, values.size)
        codes = self._index.get_indexer(values.astype(str))
        codes[codes < 0] = self.categories.size
        return codes

    def summarise(self, values: np.ndarray | pd.Series) -> BinCounts:
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            return self.count(self.codes(values))
        # Counting needs no per-value code: count the distinct values (a hash pass, ~3x cheaper
        # than factorizing on object columns), then look those few up.
        v = np.asarray(values)
        if v.dtype == bool:
            uniques, counts = np.array([False, True], dtype=object), np.bincount(v.view(np.uint8), minlength=2)
        else:
            vc = pd.Series(v if v.dtype.kind in "biufO" else v.astype(object), copy=False).value_counts(
                dropna=False, sort=False)
            uniques, counts = vc.index.to_numpy(dtype=object), vc.to_numpy()
        null = pd.isna(uniques)
        codes = self._lookup(uniques[~null])
        binned = np.bincount(codes, weights=counts[~null], minlength=self.categories.size + 1)
        return BinCounts(self.categories, binned.astype(np.int64), int(counts[null].sum()))

    def count(self, codes: np.ndarray) -> BinCounts:
        """Summary from precomputed :meth:`codes` (lets a caller look categories up once)."""
        counts = np.bincount(codes[codes >= 0], minlength=self.categories.size + 1)
        return BinCounts(self.categories, counts.astype(np.int64), int((codes < 0).sum()))
