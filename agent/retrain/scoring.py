"""The metrics the gates compare (``PRIMARY``), on row weights, and the paired bootstrap that turns
them into an interval (see :mod:`agent.retrain.gates`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from agent.retrain.gate import json_float
from agent.retrain.tabular import Task
from detectors.performance import pair_auc

__all__ = ["PRIMARY", "metric_rows", "metric", "BootstrapInterval", "paired_bootstrap"]

PRIMARY: dict[Task, tuple[str, bool]] = {"binary": ("roc_auc", True), "multiclass": ("accuracy", True),
                                         "regression": ("rmse", False)}


def metric_rows(task: Task, y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The primary metric for each row of ``weights`` ``(B, n)``: weighted ROC AUC of the score,
    accuracy of the predicted class (``pred`` labels ``(n,)`` or probabilities ``(n, k)``), RMSE."""
    weights = np.atleast_2d(weights)
    if task == "binary":
        return pair_auc(np.asarray(pred, dtype=np.float64), weights * y, weights * (1 - y))
    if task == "multiclass":
        labels = pred.argmax(axis=1) if pred.ndim == 2 else pred
        return (weights * (labels == y)).sum(axis=1) / weights.sum(axis=1)
    return np.sqrt((weights * (pred - y) ** 2).sum(axis=1) / weights.sum(axis=1))


def metric(task: Task, y: np.ndarray, pred: np.ndarray, weight: np.ndarray | None = None) -> float:
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    return float(metric_rows(task, y, pred, w[None, :])[0])


@dataclass(frozen=True, slots=True)
class BootstrapInterval:
    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, float]:
        return {k: json_float(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


def paired_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0, batch: int = 250) -> BootstrapInterval:
    """Percentile interval of a paired statistic over ``n`` rows resampled with replacement.

    ``statistic`` maps ``(B, n)`` row multiplicities (how often each row was drawn) to ``(B,)``
    values; weighted metrics take them as row weights, which equals computing the metric on the
    resampled rows. Resamples whose statistic is NaN (one class only) are dropped.
    Reference: Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13.

    >>> y = np.arange(10.0)
    >>> mean = lambda w: (w * y).sum(axis=1) / w.sum(axis=1)
    >>> ci = paired_bootstrap(mean, 10, n_resamples=500)
    >>> ci.low < 4.5 < ci.high
    True
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(seed)
    values = []
    for done in range(0, n_resamples, batch):
        b = min(batch, n_resamples - done)
        idx = rng.integers(0, n, (b, n))
        counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        values.append(np.asarray(statistic(counts.astype(np.float64)), dtype=np.float64))
    dist = np.concatenate(values)
    dist = dist[~np.isnan(dist)]
    estimate = float(np.asarray(statistic(np.ones((1, n))))[0])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha]) if len(dist) else (math.nan, math.nan)
    return BootstrapInterval(estimate, float(low), float(high), confidence, n_resamples)
