"""The out-of-fold models of :mod:`detectors.rca.noise`: checked inputs, the feature matrix both
models read, the stratified folds, and the gradient-boosted fits that predict every current row
out of fold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["_check_features", "_encode", "_folds", "_labels", "_oof"]

_MAX_BINS = 255  # HistGradientBoosting's limit: category codes in [0, 254]


# ----------------------------------------------------------------------------- inputs


def _check_features(features: object, target: str, id_column: str | None,
                    reference: pd.DataFrame, current: pd.DataFrame) -> tuple[str, ...]:
    if isinstance(features, str) or not isinstance(features, Sequence) or len(features) == 0:
        raise ValueError(f"features must be a non-empty sequence of column names, got {features!r}")
    cols = tuple(features)
    if len(set(cols)) != len(cols):
        raise ValueError(f"features must be distinct, got {cols!r}")
    for bad, what in ((target, "target"), (id_column, "id_column")):
        if bad is not None and bad in cols:
            raise ValueError(f"features must not include the {what} column {bad!r}")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"features {missing!r} are not in {name}")
    return cols


def _labels(name: str, values: pd.Series, target: str) -> np.ndarray:
    """The target as an object array of ints (numeric/boolean targets) or strs (the rest)."""
    if values.isna().any():
        raise ValueError(f"target {target!r} has {int(values.isna().sum())} missing values in {name}; "
                         f"pass labelled rows only")
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return values.to_numpy(dtype=np.int64).astype(object)
    if pd.api.types.is_numeric_dtype(dtype):
        v = values.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all() or not np.array_equal(v, np.round(v)):
            raise ValueError(f"target {target!r} in {name} has non-integer values: regression is out of scope "
                             f"(label noise is found for classification targets only)")
        return v.astype(np.int64).astype(object)
    return np.array([str(x) for x in values.to_numpy(dtype=object)], dtype=object)


def _encode(reference: pd.DataFrame, current: pd.DataFrame,
            features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One float64 matrix (reference rows, then current rows) and the categorical-column mask.

    Numeric and boolean columns stay numeric (NaN missing). Other columns (object, string,
    category) are categorical, compared as ``str(value)``: the 254 most frequent values over both
    frames get codes ``0..253``, the rest share code 254, missing values stay NaN.
    """
    n_ref = len(reference)
    x = np.empty((n_ref + len(current), len(features)), dtype=np.float64)
    categorical = np.zeros(len(features), dtype=bool)
    for j, name in enumerate(features):
        r, c = reference[name], current[name]
        for frame, s in (("reference", r), ("current", c)):
            if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
                raise ValueError(f"feature {name!r} in {frame} has unsupported dtype {s.dtype}; "
                                 f"pass numbers or categories")
        numeric = all(pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)
                      for s in (r, c)) and not any(isinstance(s.dtype, pd.CategoricalDtype) for s in (r, c))
        if numeric:
            x[:n_ref, j] = r.to_numpy(dtype=np.float64, na_value=np.nan)
            x[n_ref:, j] = c.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        categorical[j] = True
        both = pd.concat([r.astype(object), c.astype(object)], ignore_index=True)
        raw, uniques = pd.factorize(both, use_na_sentinel=True)
        # values that print alike (1 and "1") are one category
        merged, text = pd.factorize(pd.Index([str(u) for u in np.asarray(uniques, dtype=object)]))
        codes = np.where(raw >= 0, merged[np.maximum(raw, 0)] if len(uniques) else -1, -1)
        counts = np.bincount(codes[codes >= 0], minlength=len(text))
        rank = np.empty(len(text), dtype=np.float64)
        rank[np.argsort(-counts, kind="stable")] = np.minimum(np.arange(len(text)), _MAX_BINS - 1)
        x[:, j] = np.where(codes >= 0, rank[np.maximum(codes, 0)] if len(text) else 0.0, np.nan)
    return x, categorical


# ----------------------------------------------------------------------------- model


def _folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each row, stratified by class: each class's rows shuffled and dealt round-robin."""
    out = np.empty(len(y), dtype=np.intp)
    start = 0
    for k in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == k))
        out[rows] = (np.arange(rows.size) + start) % folds
        start += rows.size
    return out


def _oof(x_fit_pool: np.ndarray, y_fit_pool: np.ndarray, pool_fold: np.ndarray, x_cur: np.ndarray,
         cur_fold: np.ndarray, folds: int, n_classes: int, categorical: np.ndarray, max_fit_rows: int,
         max_iter: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, int]:
    """Out-of-fold class probabilities of the current rows; ``pool_fold == -1`` rows (reference)
    are in every fitting set. Returns (probabilities, largest fitting set)."""
    proba = np.zeros((len(x_cur), n_classes), dtype=np.float64)
    largest = 0
    cat = categorical if categorical.any() else None
    for k in range(folds):
        fit = np.flatnonzero(pool_fold != k)
        if fit.size > max_fit_rows:
            fit = np.sort(rng.choice(fit, max_fit_rows, replace=False))
        largest = max(largest, int(fit.size))
        rows = np.flatnonzero(cur_fold == k)
        if rows.size == 0:
            continue
        yk = y_fit_pool[fit]
        present = np.unique(yk)
        if present.size == 1:
            proba[rows, present[0]] = 1.0
            continue
        model = HistGradientBoostingClassifier(max_iter=max_iter, categorical_features=cat, early_stopping=False,
                                               random_state=seed + k)
        model.fit(x_fit_pool[fit], yk)
        proba[np.ix_(rows, model.classes_)] = model.predict_proba(x_cur[rows])
    return proba, largest
