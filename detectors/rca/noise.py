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
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from detectors._checks import check_frame, check_int
from detectors.rca._confident_learning import _prune_by_noise_rate
from detectors.rca._noise_fit import _check_features, _encode, _folds, _labels, _oof
from detectors.rca.noise_report import Key, LabelNoiseReport, _key, _keys

__all__ = ["Key", "LabelNoiseReport", "OutOfFold", "find_label_noise", "flag_label_noise", "out_of_fold"]

METHOD = "prune_by_noise_rate"


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
