"""Parameter checks shared by detectors (a bad parameter is a ValueError naming it, at __init__)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
import numbers

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def is_real(value: object) -> bool:
    """A real number, not a bool (``True`` is an ``int`` in Python)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the interval, or raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    if v < low or v > high or (low_open and v == low) or (high_open and v == high):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {value!r}")
    return v


def check_frame(name: str, frame: object) -> pd.DataFrame:
    """``frame`` when it is a non-empty pandas DataFrame; else ValueError naming ``name``."""
    import pandas

    if not isinstance(frame, pandas.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError(f"{name} has no rows")
    return frame
