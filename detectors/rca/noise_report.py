"""The label-noise report: the suspects :func:`detectors.rca.noise.flag_label_noise` finds among
the current rows, the flagged rows today's data explains, and the confident joint behind them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.result import as_float, as_optional_float

__all__ = ["Key", "LabelNoiseReport"]

Key = int | str
"""A row's identity in a report: its ``id_column`` value (int for integer ids, else ``str``) or
its 0-based position in ``current`` when there is no id column."""


@dataclass(frozen=True, slots=True)
class LabelNoiseReport:
    """Label-noise suspects among the current rows, and the flagged rows today's data explains.

    ``suspects`` are row keys (see :data:`Key`), most suspicious first, with ``suggested[k]``
    the joint model's most probable class for ``suspects[k]``; ``explained_by_today`` the flagged
    rows whose given label is the today-only model's most probable class (concept drift, not
    noise), in the same order. ``classes`` are the labels (ints for numeric or boolean targets,
    else ``str``), ``class_counts`` the current rows per class, ``thresholds`` the joint model's
    per-class confident thresholds (``None`` for a class no current row carries),
    ``confident_joint[i][j]`` the current rows labelled ``classes[i]`` confidently assigned
    ``classes[j]`` by the joint model (uncalibrated). ``noise_rate`` is ``len(suspects) / n``;
    ``method`` the flagging rule; ``fit_rows`` the largest number of rows any one fit used.

    >>> r = LabelNoiseReport(suspects=(17, 4), suggested=(1, 0), explained_by_today=(9,),
    ...     classes=(0, 1), class_counts=(60, 40), thresholds=(0.8, 0.7),
    ...     confident_joint=((50, 1), (2, 30)), n=100, n_reference=200, noise_rate=0.02, id_column="id",
    ...     method="prune_by_noise_rate", folds=5, seed=0, fit_rows=280)
    >>> r.n_suspects, r.n_explained_by_today, r.n_flagged
    (2, 1, 3)
    >>> r.mask(pd.DataFrame({"id": [4, 5, 17]})).tolist()
    [True, False, True]
    >>> LabelNoiseReport.from_dict(r.to_dict()) == r
    True
    """

    suspects: tuple[Key, ...]
    suggested: tuple[Key, ...]
    explained_by_today: tuple[Key, ...]
    classes: tuple[Key, ...]
    class_counts: tuple[int, ...]
    thresholds: tuple[float | None, ...]
    confident_joint: tuple[tuple[int, ...], ...]
    n: int
    n_reference: int
    noise_rate: float
    id_column: str | None
    method: str
    folds: int
    seed: int
    fit_rows: int

    @property
    def n_suspects(self) -> int:
        """Number of label-noise suspects."""
        return len(self.suspects)

    @property
    def n_explained_by_today(self) -> int:
        """Number of flagged rows the today model explains."""
        return len(self.explained_by_today)

    @property
    def n_flagged(self) -> int:
        """Rows the joint model contradicts: suspects plus those explained by today."""
        return len(self.suspects) + len(self.explained_by_today)

    @property
    def joint_noise_rate(self) -> float:
        """Confident learning's estimate of the share of mislabelled current rows before today's
        explanation: the off-diagonal mass of the confident joint calibrated so that row ``i``
        sums to ``class_counts[i]`` (Northcutt et al. 2021, eq. 2)."""
        cj = np.asarray(self.confident_joint, dtype=np.float64).reshape(len(self.classes), len(self.classes))
        rows = cj.sum(axis=1)
        counts = np.asarray(self.class_counts, dtype=np.float64)
        cal = np.divide(cj * counts[:, None], rows[:, None], out=np.zeros_like(cj), where=rows[:, None] > 0)
        return float((cal.sum() - np.trace(cal)) / self.n) if self.n else float("nan")

    def mask(self, frame: pd.DataFrame,
             which: Literal["suspects", "explained_by_today"] = "suspects") -> np.ndarray:
        """Boolean row mask of ``frame`` for the suspects (or the rows explained by today): by
        ``id_column`` when the report has one, else by position (``frame`` must then be the
        ``current`` frame, ``n`` rows)."""
        if which not in ("suspects", "explained_by_today"):
            raise ValueError(f"which must be 'suspects' or 'explained_by_today', got {which!r}")
        chosen = self.suspects if which == "suspects" else self.explained_by_today
        if self.id_column is None:
            if len(frame) != self.n:
                raise ValueError(f"frame has {len(frame)} rows; a report without id_column selects by "
                                 f"position in the {self.n} current rows")
            out = np.zeros(self.n, dtype=bool)
            out[np.asarray(chosen, dtype=np.intp)] = True
            return out
        if self.id_column not in frame.columns:
            raise ValueError(f"id_column {self.id_column!r} is not in frame")
        keys = _keys(frame[self.id_column])
        return np.isin(np.asarray(keys, dtype=object), np.asarray(chosen, dtype=object))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field (tuples as lists)."""
        return {"suspects": list(self.suspects), "suggested": list(self.suggested),
                "explained_by_today": list(self.explained_by_today), "classes": list(self.classes),
                "class_counts": [int(c) for c in self.class_counts],
                "thresholds": [None if t is None else float(t) for t in self.thresholds],
                "confident_joint": [[int(c) for c in row] for row in self.confident_joint],
                "n": int(self.n), "n_reference": int(self.n_reference), "noise_rate": float(self.noise_rate),
                "id_column": self.id_column, "method": self.method, "folds": int(self.folds),
                "seed": int(self.seed), "fit_rows": int(self.fit_rows)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelNoiseReport:
        """Inverse of :meth:`to_dict`."""
        idc = d["id_column"]
        return cls(tuple(_key(k) for k in d["suspects"]), tuple(_key(k) for k in d["suggested"]),
                   tuple(_key(k) for k in d["explained_by_today"]), tuple(_key(k) for k in d["classes"]),
                   tuple(int(c) for c in d["class_counts"]), tuple(as_optional_float(t) for t in d["thresholds"]),
                   tuple(tuple(int(c) for c in row) for row in d["confident_joint"]), int(d["n"]),
                   int(d["n_reference"]), as_float(d["noise_rate"]), None if idc is None else str(idc),
                   str(d["method"]), int(d["folds"]), int(d["seed"]), int(d["fit_rows"]))


def _key(value: Any) -> Key:
    return value if isinstance(value, str) else int(value)


def _keys(values: pd.Series) -> list[Key]:
    """Row keys of an id column: ints for integer dtypes, else ``str(value)``."""
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return [int(v) for v in values.to_numpy()]
    return [str(v) for v in values.to_numpy(dtype=object)]
