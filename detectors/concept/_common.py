"""Shared plumbing for the streaming concept-drift detectors: argument checks and the chunked
scan loop that turns a detector's vectorised ``_scan`` into a :class:`StreamVerdict`.

Private to :mod:`detectors.concept`; nothing here keeps state between calls.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from detectors._checks import check_int, check_real  # noqa: F401 - re-exported for the detectors
from detectors.result import StreamVerdict

# A scan covers at most this many outcomes at once; after a detection it restarts small so that
# a stream with many drifts does not rescan long tails (work stays ~linear in the stream length).
_FIRST_CHUNK = 512
_MAX_CHUNK = 1 << 16


def as_stream(values: object, *, binary: bool) -> np.ndarray:
    """Validate one batch: a finite 1-D float64 array; 0/1 only when ``binary``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite (found NaN or infinity)")
    if binary and not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("values must be 0 (correct) or 1 (error) for a binary detector")
    return x


def first_true(mask: np.ndarray) -> int | None:
    """Index of the first True in ``mask`` or None."""
    i = int(np.argmax(mask)) if mask.size else 0
    return i if mask.size and mask[i] else None


def inf_to_none(v: float) -> float | None:
    return None if math.isinf(v) else float(v)


def none_to(v: float | None, default: float) -> float:
    return default if v is None else float(v)


class _Scanner(Protocol):
    def _scan(self, x: np.ndarray) -> tuple[int | None, int | None]: ...
    def reset(self) -> None: ...


def run_stream(detector: _Scanner, x: np.ndarray) -> StreamVerdict:
    """Feed ``x`` to ``detector`` chunk by chunk, resetting it after each drift.

    ``detector._scan(chunk)`` returns ``(drift, warning)`` offsets within the chunk; on a drift it
    leaves its state to be discarded (we call ``reset()``), otherwise it has absorbed the chunk.
    The warning offset is only trusted up to the drift (later ones are scanned again).
    """
    n = x.shape[0]
    pos, size = 0, _FIRST_CHUNK
    drifts: list[int] = []
    warning: int | None = None
    while pos < n:
        stop = min(n, pos + size)
        drift, warn = detector._scan(x[pos:stop])
        if warn is not None and warning is None:
            warning = pos + warn
        if drift is None:
            pos, size = stop, min(2 * size, _MAX_CHUNK)
        else:
            drifts.append(pos + drift)
            detector.reset()
            pos, size = pos + drift + 1, _FIRST_CHUNK
    return StreamVerdict(drifts[0] if drifts else None, warning, tuple(drifts))
