"""Column values made comparable across the reference and the recent rows: ids and categories as
text (1, 1.0 and "1" agree), one dtype per shared column, time as seconds, row hashes for the
leakage check; see :mod:`agent.retrain.dataset`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from agent.retrain.dataset_spec import DatasetError

__all__ = ["_harmonise", "_keys", "_numeric_like", "_row_hashes", "_text", "_time_key"]


def _key(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _keys(values: pd.Series | Sequence[Any]) -> np.ndarray:
    """Ids as comparable text (1, 1.0 and "1" agree); None for a missing id."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values,
                                  use_na_sentinel=True)
    lookup = np.array([_key(u) for u in uniques] + [None], dtype=object)
    return lookup[codes]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _numeric_like(s: pd.Series) -> bool:
    return _is_numeric(s) or bool(s.isna().all())


def _text(s: pd.Series) -> pd.Series:
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda v: v if v is None else _key(v)).astype(object)


def _harmonise(reference: pd.DataFrame, recent: pd.DataFrame, numeric: Sequence[str],
               categorical: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give every column the two frames share one dtype (numeric features float64, categorical
    ones text when their dtypes differ; other differing columns float64 if both numeric, else text)."""
    reference, recent = reference.copy(), recent.copy()
    for c in numeric:
        for name, f in (("reference", reference), ("recent", recent)):
            if f[c].dtype != np.float64:
                try:
                    f[c] = pd.to_numeric(f[c].astype(object).where(f[c].notna(), np.nan)).astype(np.float64)
                except (TypeError, ValueError) as e:
                    raise DatasetError(f"numeric feature {c!r} of the {name} rows holds non-numbers: {e}") from None
    for c in set(reference.columns) & set(recent.columns) - set(numeric):
        a, b = reference[c], recent[c]
        if a.dtype == b.dtype:
            continue
        if c in categorical or not (_numeric_like(a) and _numeric_like(b)):
            reference[c], recent[c] = _text(a), _text(b)
        else:
            reference[c], recent[c] = a.astype(np.float64), b.astype(np.float64)
    return reference, recent


def _time_key(s: pd.Series, name: str) -> np.ndarray:
    if _is_numeric(s):
        key = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        t = pd.to_datetime(s, utc=True) if pd.api.types.is_datetime64_any_dtype(s) else \
            pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
        key = ((t - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(key).any():
        raise DatasetError(f"{int(np.isnan(key).sum())} recent rows have a missing or unreadable {name!r}")
    return key


def _row_hashes(frame: pd.DataFrame, columns: Sequence[str], numeric: set[str]) -> np.ndarray:
    norm = pd.DataFrame({c: (frame[c].to_numpy(dtype=np.float64, na_value=np.nan) + 0.0) if c in numeric
                         else _text(frame[c]).fillna("\x00") for c in columns})
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()
