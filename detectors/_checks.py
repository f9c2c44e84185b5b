"""Parameter checks shared by detectors (a bad parameter is a ValueError naming it, at __init__)."""

from __future__ import annotations

import numpy as np


def is_real(value: object) -> bool:
    """A real number, not a bool (``True`` is an ``int`` in Python)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
