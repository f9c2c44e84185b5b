"""The summary of a window for the multivariate tests: its rows, encoded against the reference.

:class:`~detectors.mmd.MMDDrift` (standardised rows) and
:class:`~detectors.domain_classifier.DomainClassifierDrift` (one-hot encoded rows) need the rows
themselves, so unlike the binned summaries this one grows with the window; it merges by
concatenation, so ``summarise(a) += summarise(b)`` holds the rows of ``a ++ b`` in that order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RowSample"]


class RowSample:
    """Encoded rows of a window, ``(n, width)`` float64; ``+=`` appends another sample's rows.

    Appends are kept as parts and joined on first read of :attr:`rows`, so merging many small
    batches costs one copy, not one per merge.

    >>> a = RowSample(np.zeros((2, 3)))
    >>> a += RowSample(np.ones((1, 3)))
    >>> a.rows.shape, len(a), a.rows[:, 0].tolist()
    ((3, 3), 3, [0.0, 0.0, 1.0])
    """

    __slots__ = ("_parts", "width")

    def __init__(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"rows must be 2-D [rows, features], got shape {rows.shape}")
        self._parts = [rows]
        self.width = rows.shape[1]

    @property
    def rows(self) -> np.ndarray:
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0]

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def __iadd__(self, other: RowSample) -> RowSample:
        if other.width != self.width:
            raise ValueError(f"cannot merge RowSamples of {self.width} and {other.width} columns")
        self._parts.extend(other._parts)
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowSample) and np.array_equal(self.rows, other.rows, equal_nan=True)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RowSample({len(self)} rows x {self.width})"
