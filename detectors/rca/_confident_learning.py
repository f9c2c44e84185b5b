"""Confident learning's prune-by-noise-rate rule on out-of-fold probabilities: per-class
thresholds, the confident joint, its calibration, and the flagged rows (see
:mod:`detectors.rca.noise` for the statistic and how it differs from cleanlab's)."""

from __future__ import annotations

import numpy as np

__all__ = ["_prune_by_noise_rate"]


def _thresholds(proba: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Confident threshold per class: mean probability of the class over rows labelled with it."""
    counts = np.bincount(y, minlength=n_classes)
    sums = np.bincount(y, weights=proba[np.arange(len(y)), y], minlength=n_classes)
    return np.divide(sums, counts, out=np.full(n_classes, np.nan), where=counts > 0)


def _confident_class(proba: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Most probable class among those at or above their threshold; -1 when none is."""
    with np.errstate(invalid="ignore"):
        confident = proba >= thresholds  # NaN thresholds: never confident
    masked = np.where(confident, proba, -1.0)
    best = masked.argmax(axis=1)
    return np.where(confident.any(axis=1), best, -1)


def _round_rows(m: np.ndarray) -> np.ndarray:
    """Round each row to integers keeping its (rounded) total: floors, then the largest remainders."""
    out = np.floor(m)
    short = np.rint(m.sum(axis=1) - out.sum(axis=1)).astype(np.intp)
    order = np.argsort(-(m - out), axis=1, kind="stable")
    for i, k in enumerate(short):
        out[i, order[i, :k]] += 1
    return out.astype(np.int64)


def _prune_by_noise_rate(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flagged mask, thresholds, uncalibrated confident joint) of confident learning's
    prune-by-noise-rate rule; see :mod:`detectors.rca.noise`."""
    n, k = proba.shape
    t = _thresholds(proba, y, k)
    assigned = _confident_class(proba, t)
    has = assigned >= 0
    cj = np.zeros((k, k), dtype=np.int64)
    np.add.at(cj, (y[has], assigned[has]), 1)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    c = cj.astype(np.float64)
    np.fill_diagonal(c, np.maximum(np.diag(c), 1.0))
    cal = _round_rows(c / c.sum(axis=1, keepdims=True) * counts[:, None])
    # keep at least one row of each given label (cleanlab's min_examples_per_class=1)
    for i in range(k):
        lift = max(1 - int(cal[i, i]), 0)
        off = [j for j in range(k) if j != i and cal[i, j] > 0]
        if lift and off:
            for j in off:
                cal[i, j] = max(int(cal[i, j] - np.ceil(lift / len(off))), 0)
    flagged = np.zeros(n, dtype=bool)
    for i in range(k):
        rows = np.flatnonzero(y == i)
        for j in range(k):
            m = int(cal[i, j])
            if j == i or m <= 0 or rows.size == 0:
                continue
            margin = proba[rows, j] - proba[rows, i]
            flagged[rows[np.argsort(-margin, kind="stable")[:m]]] = True
    flagged &= proba[np.arange(n), y] < proba.max(axis=1)  # never when the given label is the most probable
    return flagged, t, cj
