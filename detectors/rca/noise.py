"""Label-noise suspects for root-cause analysis: current labels that a model of the reference and
of the rest of the current data confidently contradicts, and that today's data cannot explain.

Statistic (confident learning, Northcutt, Jiang & Chuang 2021, "prune by noise rate").
Out-of-fold predicted probabilities ``p`` for every current row come from a gradient-boosted model
(:class:`sklearn.ensemble.HistGradientBoostingClassifier`) fitted on the reference plus the
*other* folds of the current rows (the *joint* model). For each class ``j`` the confident
threshold ``t_j`` is the mean of ``p_j`` over the current rows labelled ``j``; a row is
confidently of class ``j`` when ``p_j >= t_j`` and is assigned the most probable of its confident
classes. The confident joint ``C[i][j]`` counts rows labelled ``i`` assigned ``j``; it is
calibrated so that row ``i`` sums to the ``n_i`` rows labelled ``i`` (diagonal at least 1,
rounded keeping row totals, at least one row of each label kept), which estimates how many rows
labelled ``i`` truly are ``j``. Then, for each ``i`` and ``j != i``, the ``C[i][j]`` rows labelled
``i`` with the largest margin ``p_j - p_i`` are *flagged*, except rows whose given label is their
most probable class. This is cleanlab's default ``find_label_issues`` (``filter_by=
"prune_by_noise_rate"``); the differences: among two or more confident classes cleanlab assigns
the overall argmax even when it is below its own threshold (here: the most probable *confident*
class), and ties of margin are broken by row order. On binary problems the two flag the same rows
up to ties.

Today's explanation. A second out-of-fold model is fitted on the current rows only (the *today*
model, same folds, probabilities ``q``). A flagged row whose given label is the today model's
most probable class is *explained by today*: its label follows a relation that today's rows teach
consistently (concept drift in that part of the input space), not noise. The remaining flagged
rows are the ``label_noise`` suspects, most suspicious first (lowest ``p`` of the given label).
The today model's *confident* class (``q_i >= t'_i``) was tried as the rule and rejected: about
half the rows sit below a class's mean confidence, so ~8 % of the consistently changed rows the
joint model flags stayed suspects (car loan, ``bench/label_noise.py``), against ~1 % with the
argmax; on random planted noise both explain no more than 1 % of the flipped rows.

Assumptions and when it misleads: the reference's labels are trusted, and the joint model must
be good where the suspects are (where it predicts poorly, its confident mistakes look like
noise). Natural label noise (labels drawn at random around the Bayes rule) is indistinguishable
from planted noise, so every dataset has a floor of suspects: on the car-loan data ~2.4 % of rows
are wrong even where the model is 98 % sure. Noise that is a function of the features is learnt
by the today model and reported as explained, which is the point; but a consistent change on
fewer rows than the today model can learn from stays suspect, and one whose rows are about as
many as the reference's in that region is learnt by the joint model too, so it is neither flagged
nor explained (not called noise, and left to the concept-drift detectors). Fitting sets are
sampled down to ``max_fit_rows`` (a larger reference is sampled down to it first, so memory stays
``O(max_fit_rows + current rows)``); every current row still gets an out-of-fold prediction.
Classification only (binary or multiclass).

References: C. G. Northcutt, L. Jiang & I. L. Chuang (2021), Confident Learning: Estimating
Uncertainty in Dataset Labels, JAIR 70; cleanlab (Apache-2.0), ``cleanlab.filter``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from detectors._checks import check_frame, check_int
from detectors.result import as_float, as_optional_float

__all__ = ["LabelNoiseReport", "OutOfFold", "find_label_noise", "flag_label_noise", "out_of_fold"]

Key = int | str
"""A row's identity in a report: its ``id_column`` value (int for integer ids, else ``str``) or
its 0-based position in ``current`` when there is no id column."""

METHOD = "prune_by_noise_rate"
_MAX_BINS = 255  # HistGradientBoosting's limit: category codes in [0, 254]


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


# ----------------------------------------------------------------------------- search


@dataclass(frozen=True, slots=True, eq=False)
class OutOfFold:
    """Out-of-fold class probabilities of the current rows, the input of :func:`flag_label_noise`.

    ``labels[r]`` indexes ``classes`` (row ``r`` of ``current``, named ``keys[r]``); ``joint``
    holds the probabilities of the model fitted on the reference and the other folds, ``today``
    those of the model fitted on the other folds alone (both ``n x len(classes)``).

    >>> oof = OutOfFold((0, 1, 2), (0, 1), np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05]]),
    ...                 np.array([[0.8, 0.2], [0.3, 0.7], [0.9, 0.1]]), None, 10, 2, 0, 12)
    >>> OutOfFold.from_dict(oof.to_dict()) == oof
    True
    """

    keys: tuple[Key, ...]
    classes: tuple[Key, ...]
    labels: np.ndarray
    joint: np.ndarray
    today: np.ndarray
    id_column: str | None
    n_reference: int
    folds: int
    seed: int
    fit_rows: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutOfFold):
            return NotImplemented
        return (self.keys == other.keys and self.classes == other.classes
                and all(np.array_equal(a, b) for a, b in ((self.labels, other.labels), (self.joint, other.joint),
                                                          (self.today, other.today)))
                and (self.id_column, self.n_reference, self.folds, self.seed, self.fit_rows)
                == (other.id_column, other.n_reference, other.folds, other.seed, other.fit_rows))

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field (arrays as nested lists)."""
        return {"keys": list(self.keys), "classes": list(self.classes), "labels": self.labels.tolist(),
                "joint": self.joint.tolist(), "today": self.today.tolist(), "id_column": self.id_column,
                "n_reference": int(self.n_reference), "folds": int(self.folds), "seed": int(self.seed),
                "fit_rows": int(self.fit_rows)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutOfFold:
        """Inverse of :meth:`to_dict`."""
        k = len(d["classes"])
        idc = d["id_column"]
        return cls(tuple(_key(v) for v in d["keys"]), tuple(_key(v) for v in d["classes"]),
                   np.asarray(d["labels"], dtype=np.intp).reshape(-1),
                   np.asarray(d["joint"], dtype=np.float64).reshape(-1, k),
                   np.asarray(d["today"], dtype=np.float64).reshape(-1, k), None if idc is None else str(idc),
                   int(d["n_reference"]), int(d["folds"]), int(d["seed"]), int(d["fit_rows"]))


def out_of_fold(reference: pd.DataFrame, current: pd.DataFrame, *, target: str, features: Sequence[str],
                id_column: str | None = None, folds: int = 5, seed: int = 0, max_fit_rows: int = 100_000,
                max_iter: int = 100, max_classes: int = 100, n_threads: int | None = None) -> OutOfFold:
    """Fit the joint and today models fold by fold and predict every current row out of fold
    (parameters as in :func:`find_label_noise`).

    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.normal(size=300)}).assign(y=lambda f: (f.x > 0).astype(int))
    >>> oof = out_of_fold(frame, frame, target="y", features=["x"], folds=3, n_threads=1)
    >>> oof.joint.shape, oof.classes, bool((oof.joint.argmax(axis=1) == oof.labels).mean() > 0.9)
    ((300, 2), (0, 1), True)
    """
    reference = check_frame("reference", reference)
    current = check_frame("current", current)
    if not isinstance(target, str) or target not in reference.columns or target not in current.columns:
        where = [n for n, f in (("reference", reference), ("current", current))
                 if not isinstance(target, str) or target not in f.columns]
        raise ValueError(f"target {target!r} is not a column of {' and '.join(where)}")
    if id_column is not None and (not isinstance(id_column, str) or id_column not in current.columns):
        raise ValueError(f"id_column {id_column!r} is not a column of current")
    if id_column == target:
        raise ValueError(f"id_column must differ from target, both are {target!r}")
    cols = _check_features(features, target, id_column, reference, current)
    n = len(current)
    folds = check_int("folds", folds, 2)
    if n < folds:
        raise ValueError(f"current has {n} rows, fewer than folds={folds}")
    seed = check_int("seed", seed, 0)
    max_fit_rows = check_int("max_fit_rows", max_fit_rows, 100)
    max_iter = check_int("max_iter", max_iter, 1)
    max_classes = check_int("max_classes", max_classes, 2)
    if n_threads is not None:
        n_threads = check_int("n_threads", n_threads, 1)

    keys: list[Key] = list(range(n))
    if id_column is not None:
        ids = current[id_column]
        if ids.isna().any():
            raise ValueError(f"id_column {id_column!r} has missing values")
        keys = _keys(ids)
        if len(set(keys)) != n:
            raise ValueError(f"id_column {id_column!r} has duplicate values")

    rng = np.random.default_rng(seed)
    n_reference = len(reference)
    if n_reference > max_fit_rows:  # no fit could use more: bounds memory at O(max_fit_rows + n) rows
        reference = reference.iloc[np.sort(rng.choice(n_reference, max_fit_rows, replace=False))]
    y_ref_raw = _labels("reference", reference[target], target)
    y_cur_raw = _labels("current", current[target], target)
    if type(y_ref_raw[0]) is not type(y_cur_raw[0]):
        raise ValueError(f"target {target!r} is numeric in one frame and not in the other")
    classes, codes = np.unique(np.concatenate([y_ref_raw, y_cur_raw]), return_inverse=True)
    n_classes = len(classes)
    if n_classes < 2:
        raise ValueError(f"target {target!r} has a single class ({classes[0]!r}); need at least 2")
    if n_classes > max_classes:
        raise ValueError(f"target {target!r} has {n_classes} classes, more than max_classes={max_classes} "
                         f"(a regression target? regression is out of scope)")
    n_ref = len(reference)
    y_ref, y = codes[:n_ref].astype(np.intp), codes[n_ref:].astype(np.intp)

    x, categorical = _encode(reference, current, cols)
    x_cur = x[n_ref:]
    fold = _folds(y, folds, rng)
    pool_fold = np.concatenate([np.full(n_ref, -1, dtype=np.intp), fold])
    with nullcontext() if n_threads is None else threadpool_limits(limits=n_threads, user_api="openmp"):
        joint, fit_joint = _oof(x, np.concatenate([y_ref, y]), pool_fold, x_cur, fold, folds, n_classes,
                                categorical, max_fit_rows, max_iter, rng, seed)
        today, fit_today = _oof(x_cur, y, fold, x_cur, fold, folds, n_classes, categorical, max_fit_rows,
                                max_iter, rng, seed)
    label = tuple(v if isinstance(v, str) else int(v) for v in classes.tolist())
    return OutOfFold(tuple(keys), label, y, joint, today, id_column, n_reference, folds, seed,
                     max(fit_joint, fit_today))


def flag_label_noise(oof: OutOfFold) -> LabelNoiseReport:
    """The suspects and the rows explained by today, from out-of-fold probabilities (the rule of
    :mod:`detectors.rca.noise`; no model is fitted here).

    >>> y = np.array([0] * 6 + [1] * 6)
    >>> joint = np.where(np.arange(12)[:, None] < 6, [0.9, 0.1], [0.1, 0.9])
    >>> joint[0] = [0.05, 0.95]        # row 0 is labelled 0, both models say 1: noise
    >>> joint[6] = [0.97, 0.03]        # row 6 is labelled 1, the joint model says 0 ...
    >>> today = joint.copy()
    >>> today[6] = [0.4, 0.6]          # ... but the today model says 1: explained by today
    >>> report = flag_label_noise(OutOfFold(tuple(range(12)), (0, 1), y, joint, today, None, 0, 2, 0, 12))
    >>> report.suspects, report.suggested, report.explained_by_today
    ((0,), (1,), (6,))
    """
    y, p, q = oof.labels, oof.joint, oof.today
    n, k = p.shape
    flagged, t, cj = _prune_by_noise_rate(y, p)
    explained = flagged & (q.argmax(axis=1) == y)
    suspect = flagged & ~explained
    order = np.argsort(p[np.arange(n), y], kind="stable")  # least likely given label first
    suspect_rows = order[suspect[order]]
    explained_rows = order[explained[order]]
    best = p.argmax(axis=1)
    return LabelNoiseReport(
        suspects=tuple(oof.keys[i] for i in suspect_rows),
        suggested=tuple(oof.classes[best[i]] for i in suspect_rows),
        explained_by_today=tuple(oof.keys[i] for i in explained_rows), classes=oof.classes,
        class_counts=tuple(int(c) for c in np.bincount(y, minlength=k)),
        thresholds=tuple(None if np.isnan(v) else float(v) for v in t),
        confident_joint=tuple(tuple(int(c) for c in row) for row in cj), n=n, n_reference=oof.n_reference,
        noise_rate=float(suspect_rows.size / n), id_column=oof.id_column, method=METHOD, folds=oof.folds,
        seed=oof.seed, fit_rows=oof.fit_rows)


def find_label_noise(reference: pd.DataFrame, current: pd.DataFrame, *, target: str, features: Sequence[str],
                     id_column: str | None = None, folds: int = 5, seed: int = 0, max_fit_rows: int = 100_000,
                     max_iter: int = 100, max_classes: int = 100, n_threads: int | None = None) -> LabelNoiseReport:
    """The ``label_noise`` suspects among ``current``'s labels (statistic, assumptions and
    references in :mod:`detectors.rca.noise`): :func:`flag_label_noise` of :func:`out_of_fold`.

    ``target`` names the label column (binary or multiclass: integral numbers, booleans or
    categories; at most ``max_classes`` classes), ``features`` the model's inputs (numeric
    columns, and object/string/category columns as categories; NaN allowed), ``id_column`` the
    column whose values name the suspects (without it, rows are named by position in
    ``current``). ``folds`` out-of-fold splits of the current rows (stratified by label);
    ``seed`` fixes the folds, the sampling of fitting sets down to ``max_fit_rows`` and the
    models; ``max_iter`` boosting iterations per model. Ten fits in all at the defaults (two
    models x five folds): about 10 s for 200,000 current rows x 10 features on 2 idle cores.
    ``n_threads`` caps the fits' OpenMP threads for the duration of the call (``None``:
    scikit-learn's default, every core). Pass 1 where other processes share the cores: the
    boosting's many short parallel regions wait for descheduled threads, and a fit that takes 1.5 s
    on one thread took 8-20 s on two busy cores.

    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"x": x, "y": (x > 0).astype(int)})
    >>> reference, current = frame(2000), frame(1000)
    >>> flipped = set(rng.choice(1000, 50, replace=False).tolist())
    >>> current.loc[sorted(flipped), "y"] = 1 - current.loc[sorted(flipped), "y"]
    >>> report = find_label_noise(reference, current, target="y", features=["x"], n_threads=1)
    >>> found = set(report.suspects)
    >>> len(found & flipped) >= 42, len(found - flipped) <= 5
    (True, True)
    """
    return flag_label_noise(out_of_fold(reference, current, target=target, features=features, id_column=id_column,
                                        folds=folds, seed=seed, max_fit_rows=max_fit_rows, max_iter=max_iter,
                                        max_classes=max_classes, n_threads=n_threads))
