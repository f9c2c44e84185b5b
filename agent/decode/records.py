"""What a decoded batch is: valid records of one model as columns, and rejected records with
their reasons; plus the timestamp rules both decoding routes share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agent.decode.features import FeatureColumns
from agent.decode.scanner import Scanned

__all__ = ["Rejected", "Predictions", "Labels", "timestamps", "scanned_timestamps"]

_NUMBER = (int, float)
_MAX_EPOCH_S = 253402300800.0  # 10000-01-01T00:00:00Z: RFC 3339 years end at 9999


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that breaks the contract: its position in the polled batch and why."""

    position: int
    reason: str
    model: str | None = None


@dataclass(slots=True)
class Predictions:
    """Valid prediction records of one model from one batch, as columns."""

    model: str
    positions: np.ndarray  # int64 index into the polled batch
    ids: np.ndarray  # object (str)
    event_s: np.ndarray  # float64 epoch seconds
    prediction: np.ndarray  # float64 (classes are numeric) or object
    score: np.ndarray  # float64, NaN when absent
    features: list[dict[str, Any]] | None  # raw feature objects, when no typed columns were built
    scores: list[dict[str, float] | None] | None = None  # multiclass {class: probability}; None if no record has one
    columns: FeatureColumns | None = None  # typed feature columns (decode with a TypedFeatures)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Labels:
    """Valid label records of one model from one batch, as columns."""

    model: str
    positions: np.ndarray
    ids: np.ndarray
    event_s: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def timestamps(raw: list[Any], broker_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds per record and a mask of unparseable timestamps.

    Numbers above 1e11 are read as milliseconds (1e11 s is the year 5138); strings as RFC 3339;
    absent (None) falls back to the broker timestamp.
    """
    n = len(raw)
    out = broker_ms.astype(float) / 1000.0
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return out, bad
    arr = np.empty(n, dtype=object)
    arr[:] = raw
    kinds = set(map(type, raw))  # usually one: every producer writes timestamps the same way
    if kinds <= {int, float}:
        is_num, is_str = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    elif kinds == {str}:
        is_num, is_str = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    else:
        is_num = np.fromiter((type(v) in _NUMBER for v in raw), bool, n)
        is_str = np.fromiter((type(v) is str for v in raw), bool, n)
    if is_num.any():
        out[is_num], bad[is_num] = epoch_seconds(arr[is_num].astype(float))
    if is_str.any():
        strs = pd.Series(arr[is_str])
        parsed = pd.to_datetime(strs, utc=True, format="ISO8601", errors="coerce")
        if parsed.isna().any():  # RFC 3339 also allows a lower-case "t" and "z"
            parsed = parsed.fillna(pd.to_datetime(strs.str.upper(), utc=True, format="ISO8601", errors="coerce"))
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        ok = parsed.notna().to_numpy()
        vals = out[is_str]
        vals[ok] = ns[ok] / 1e9
        out[is_str] = vals
        idx = np.flatnonzero(is_str)
        bad[idx[~ok]] = True
    other = ~is_num & ~is_str & (arr != None)  # noqa: E711 - elementwise None test
    bad |= other
    return out, bad


def epoch_seconds(nums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds of numeric timestamps (above 1e11: milliseconds) and a mask of those out
    of range (e.g. nanoseconds: year > 9999)."""
    secs = np.where(nums > 1e11, nums / 1000.0, nums)
    return secs, ~((secs >= 0.0) & (secs < _MAX_EPOCH_S))


def scanned_timestamps(s: Scanned, pos: np.ndarray, broker_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`timestamps` of scanned rows: numbers vectorised; strings (a row whose numeric
    timestamp is NaN and whose string is set) parsed by :func:`timestamps` itself, in one call."""
    t = s.ts[pos]
    out = broker_ms.astype(float) / 1000.0
    have = ~np.isnan(t)
    secs, bad = epoch_seconds(t)
    out[have] = secs[have]
    bad &= have
    if s.ts_str is not None:
        strs = np.empty(len(s.ts_str), dtype=object)
        strs[:] = s.ts_str
        strs = strs[pos]
        is_str = strs != None  # noqa: E711 - elementwise None test
        if is_str.any():
            out[is_str], bad[is_str] = timestamps(strs[is_str].tolist(), broker_ms[is_str])
    return out, bad
