"""The data gates of the checklist (:mod:`agent.retrain.gates`): shapes, dtypes, finite values,
normalisation, label alignment and leakage, with the quick models the baseline and the alignment
check fit."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from agent.retrain.gate import Gate, _gate
from agent.retrain.tabular import Split, Task

__all__ = ["shapes_gate", "dtypes_gate", "finite_gate", "normalised_gate", "baseline_predictions",
           "alignment_predictions", "alignment_loss", "alignment_gate", "row_hashes", "leakage_gate"]


def shapes_gate(splits: Mapping[str, Split], n_numeric: int, cardinalities: Sequence[int], min_rows: int) -> Gate:
    """Every split has rows, the expected widths, one label and one weight per row, codes in range."""
    problems = []
    for name, s in splits.items():
        n = len(s)
        if n == 0:
            problems.append(f"{name} is empty")
        if s.features.numeric.shape != (n, n_numeric):
            problems.append(f"{name} numeric {s.features.numeric.shape} != ({n}, {n_numeric})")
        if s.features.categorical.shape != (n, len(cardinalities)):
            problems.append(f"{name} categorical {s.features.categorical.shape} != ({n}, {len(cardinalities)})")
        elif n and len(cardinalities):
            if (s.features.categorical < 0).any() or (s.features.categorical >= np.asarray(cardinalities)).any():
                problems.append(f"{name} has category codes out of range")
        if s.target.shape != (n,) or s.weight.shape != (n,):
            problems.append(f"{name} target {s.target.shape} / weight {s.weight.shape} != ({n},)")
    n_train = len(splits["train"])
    if n_train < min_rows:
        problems.append(f"train has {n_train} rows < {min_rows}")
    shapes = ", ".join(f"{k} {len(s)}x({s.features.numeric.shape[1]}+{s.features.categorical.shape[1]})"
                       for k, s in splits.items())
    return _gate("data.shapes", not problems, n_train, min_rows,
                 "; ".join(problems) or f"train rows >= {min_rows}; {shapes}")


def dtypes_gate(splits: Mapping[str, Split], task: Task) -> Gate:
    want_y = np.int64 if task == "multiclass" else np.float32
    bad = [f"{name}.{part} is {arr.dtype}, want {np.dtype(want).name}" for name, s in splits.items()
           for part, arr, want in (("numeric", s.features.numeric, np.float32),
                                   ("categorical", s.features.categorical, np.int64),
                                   ("target", s.target, want_y), ("weight", s.weight, np.float32))
           if arr.dtype != want]
    return _gate("data.dtypes", not bad, len(bad), 0,
                 "; ".join(bad) or f"numeric float32, categorical int64, target {np.dtype(want_y).name}")


def finite_gate(splits: Mapping[str, Split]) -> Gate:
    """No NaN/Inf after preprocessing in features, targets or weights; weights >= 0 with mass > 0."""
    problems, count = [], 0
    for name, s in splits.items():
        for part, arr in (("numeric", s.features.numeric), ("target", s.target), ("weight", s.weight)):
            k = int((~np.isfinite(arr)).sum()) if arr.dtype.kind == "f" else 0
            if k:
                cols = np.flatnonzero((~np.isfinite(arr)).any(axis=0)) if arr.ndim == 2 else []
                problems.append(f"{name}.{part}: {k} non-finite" + (f" in columns {list(cols)[:5]}" if len(cols) else ""))
                count += k
        neg = int((s.weight < 0).sum())
        if neg or not s.weight.sum() > 0:
            problems.append(f"{name}.weight: {neg} negative, total {float(s.weight.sum()):.3g}")
            count += max(neg, 1)
    return _gate("data.finite", not problems, count, 0, "; ".join(problems) or "all values finite (count <= 0)")


def normalised_gate(train: Split, standardised: np.ndarray, tolerance: float, names: Sequence[str] = ()) -> Gate:
    """The standardised columns have train mean ~0 and std ~1: max(|mean|, |std - 1|) <= tolerance."""
    if len(standardised) == 0:
        return _gate("data.normalised", True, None, tolerance, "skipped: no standardised numeric column")
    x = train.features.numeric[:, standardised].astype(np.float64)
    dev = np.maximum(np.abs(x.mean(axis=0)), np.abs(x.std(axis=0) - 1))
    worst = int(np.argmax(dev))
    label = names[standardised[worst]] if len(names) else f"column {int(standardised[worst])}"
    return _gate("data.normalised", dev[worst] <= tolerance, float(dev[worst]), tolerance,
                 f"max(|mean|, |std-1|) over {len(standardised)} columns <= {tolerance}; worst {label}")


def _design(split: Split, cardinalities: Sequence[int]) -> np.ndarray:
    blocks = [split.features.numeric.astype(np.float64)]
    for j, k in enumerate(cardinalities):
        blocks.append(np.eye(k)[split.features.categorical[:, j]])
    return np.hstack(blocks)


def baseline_predictions(task: Task, train: Split, val: Split, cardinalities: Sequence[int], n_classes: int,
                         target: np.ndarray | None = None) -> np.ndarray:
    """A simple model on the same preprocessing (numeric block + one-hot codes): scikit-learn's
    LogisticRegression (classification) or Ridge (regression), fit with the train weights;
    predictions on ``val`` in the encoded space. ``target`` replaces the train labels."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    y = train.target if target is None else target
    x_train, x_val = _design(train, cardinalities), _design(val, cardinalities)
    if task == "regression":
        return Ridge(alpha=1.0).fit(x_train, y, sample_weight=train.weight).predict(x_val)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(max_iter=500).fit(x_train, y.astype(np.int64), sample_weight=train.weight)
    proba = lr.predict_proba(x_val)
    if task == "binary":
        return proba[:, list(lr.classes_).index(1)] if 1 in lr.classes_ else np.zeros(len(val))
    out = np.zeros((len(val), n_classes))
    out[:, lr.classes_.astype(np.int64)] = proba
    return out


def alignment_predictions(task: Task, train: Split, val: Split, cardinalities: Sequence[int], n_classes: int,
                          target: np.ndarray | None = None, seed: int = 0, max_rows: int = 10_000) -> np.ndarray:
    """A quick non-linear model for the label-alignment check: scikit-learn's histogram gradient
    boosting (20 trees of 15 leaves, learning rate 0.3, no early stopping) on the same preprocessing, fit on at most
    ``max_rows`` train rows with their weights. Non-linear because a linear fit sees no signal in
    data whose classes are, say, rings around the origin, and would call aligned labels shuffled."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    y = train.target if target is None else target
    rows = np.arange(len(train))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
    x_train, x_val = _design(train, cardinalities)[rows], _design(val, cardinalities)
    params = {"max_iter": 20, "learning_rate": 0.3, "max_leaf_nodes": 15, "max_bins": 63,
              "early_stopping": False, "random_state": seed}
    if task == "regression":
        return HistGradientBoostingRegressor(**params).fit(x_train, y[rows], sample_weight=train.weight[rows]).predict(x_val)
    model = HistGradientBoostingClassifier(**params).fit(x_train, y[rows].astype(np.int64),
                                                         sample_weight=train.weight[rows])
    proba = model.predict_proba(x_val)
    out = np.zeros((len(val), max(n_classes, 2)))
    out[:, model.classes_.astype(np.int64)] = proba
    return out[:, 1] if task == "binary" else out


def alignment_loss(task: Task, y: np.ndarray, pred: np.ndarray, weight: np.ndarray) -> float:
    """The weighted validation loss of predictions: log-loss (binary, multiclass) or MSE.
    A proper score, not a ranking: a fit on shuffled labels that happens to find the right direction
    still predicts close to the prior, where a ranking metric like AUC may call it strong."""
    w = weight.astype(np.float64) / weight.sum()
    if task == "regression":
        return float((w * (pred - y) ** 2).sum())
    eps = 1e-12
    if task == "binary":
        p = np.clip(pred, eps, 1 - eps)
        return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum())
    p = np.clip(pred[np.arange(len(y)), y.astype(np.int64)], eps, 1.0)
    return float(-(w * np.log(p)).sum())


def alignment_gate(real: float, permuted: Sequence[float], margin: float) -> Gate:
    """Features and labels line up: a quick model (:func:`alignment_predictions`) fit on the true
    train labels has a validation loss below the same fit's on permuted train labels, by more than
    ``margin`` of it (the figure is
    ``1 - loss_real / mean(loss_permuted)``: R^2-like). Also fails when the features carry no
    signal at all: there is nothing to learn either way."""
    ref = float(np.mean(permuted))
    gain = 1.0 - real / ref if ref > 0 else -math.inf
    return _gate("data.label_alignment", gain > margin, gain, margin,
                 f"quick model's validation loss {real:.4f} vs with permuted train labels "
                 f"{', '.join(f'{p:.4f}' for p in permuted)}: 1 - real/permuted > {margin}")


def row_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One 64-bit hash per row of ``columns`` (the frames must share dtypes)."""
    return pd.util.hash_pandas_object(frame[list(columns)], index=False).to_numpy()


def leakage_gate(train_ids: np.ndarray | None, holdout_ids: np.ndarray | None,
                 train_rows: np.ndarray, holdout_rows: np.ndarray) -> Gate:
    """No id and no identical feature+label row in both the fit rows and the holdout."""
    ids = 0 if train_ids is None or holdout_ids is None else int(np.isin(holdout_ids, train_ids).sum())
    rows = int(np.isin(holdout_rows, train_rows).sum())
    what = "ids not checked (no id column); " if train_ids is None else ""
    return _gate("data.leakage", ids + rows == 0, ids + rows, 0,
                 f"{what}holdout rows whose id is in train: {ids}; duplicating a train row: {rows} (<= 0)")
