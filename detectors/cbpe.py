"""Confidence-based performance estimation (CBPE): performance before labels arrive.

If the model's calibrated probability ``p_i = P(y_i = 1 | x_i)`` is right, the label of row ``i``
is a Bernoulli(``p_i``) draw, so every confusion-matrix cell has a known expectation: expected
TP = sum of ``p_i`` over rows predicted positive, expected FP = sum of ``1 - p_i`` over the same
rows, and so on. Ratio metrics (accuracy, precision, recall, f1) are estimated as ratios of these
expectations. ROC AUC is estimated by the CBPE curve: sort rows by the model's score, let each
row contribute ``p_i`` to the true-positive count and ``1 - p_i`` to the false-positive count,
and take the area under the expected (FPR, TPR) curve. That equals the weighted Mann-Whitney
statistic ``sum_ij p_i (1 - p_j) [s_i > s_j] / (sum p)(sum 1 - p)`` (ties count one half).
Average precision is estimated the same way on the expected precision-recall curve.

Calibration: an isotonic regression of the reference labels on the reference scores (numpy
pool-adjacent-violators, linear interpolation between fitted points, clipped outside the
reference range: the same function as scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``).
``calibration="isotonic"`` (default) always calibrates; ``"auto"`` only when that lowers the 10-bin
ECE in 5-fold cross-validation on the reference (NannyML's idea, but here it skipped calibration on
employment_MA and the ROC AUC error rose from 0.0040 to 0.0058); ``"none"`` never. Multiclass: one
calibrator per class (one-vs-rest), rows renormalised to sum to one.

Assumptions and when it misleads: the estimate is exact in expectation only while P(y | x) is
unchanged (no concept drift) and the calibrator is right on the window's region of the input
space. It follows covariate shift (inputs move, P(y|x) stays) but is blind to concept drift,
which is what :func:`detectors.conditional.concept_vs_covariate` exploits. Regression is not
available: CBPE needs class probabilities (use a direct loss estimator); ``task="regression"``
raises ``ValueError``.

Reference: NannyML, "Confidence-based Performance Estimation" (M. Nowak et al.), docs.nannyml.com.

>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(size=20_000)
>>> y = (rng.uniform(size=p.size) < p).astype(int)
>>> est = CBPE(metrics=("roc_auc", "accuracy")).fit(p[:10_000], y[:10_000])
>>> bool(abs(est.estimate(p[10_000:])["accuracy"] - 0.75) < 0.02)
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from detectors._checks import check_int, check_real
from detectors._compat import fit_method
from detectors.performance import _average_precision, _div, _nanmean_last, ece_bin, pair_auc

CBPE_METRICS = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1")
TASKS = ("binary", "multiclass")


# ----------------------------------------------------------------------------- isotonic calibrator


def _pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted pool-adjacent-violators: the non-decreasing least-squares fit to ``y``."""
    vals: list[float] = []
    wts: list[float] = []
    cnts: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist()):
        vals.append(yi)
        wts.append(wi)
        cnts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v1, w1, c1 = vals.pop(), wts.pop(), cnts.pop()
            tw = wts[-1] + w1
            vals[-1] = (vals[-1] * wts[-1] + v1 * w1) / tw
            wts[-1] = tw
            cnts[-1] += c1
    return np.repeat(np.asarray(vals), cnts)


def _empty() -> np.ndarray:
    return np.empty(0)


@dataclass(slots=True, eq=False)
class IsotonicCalibrator:
    """Monotone map from score to probability: knots ``x`` (increasing) and values ``y``.

    >>> cal = IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
    >>> cal.y.tolist(), cal(np.array([0.0, 0.25, 1.0])).tolist()
    ([0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 1.0])
    >>> IsotonicCalibrator.from_state(cal.state())(np.array([0.25])).tolist()
    [0.5]
    """

    x: np.ndarray = field(default_factory=_empty)
    y: np.ndarray = field(default_factory=_empty)

    @fit_method(lambda cls, scores, outcome: cls().fit(scores, outcome))
    def fit(self, scores: np.ndarray, outcome: np.ndarray) -> Self:
        """Isotonic regression of ``outcome`` (0/1) on ``scores``; returns ``self``."""
        ux, inv = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        w = np.bincount(inv).astype(np.float64)
        mean_y = np.bincount(inv, np.asarray(outcome, dtype=np.float64)) / w
        self.x, self.y = ux, _pava(mean_y, w)
        return self

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if len(self.x) <= 1:
            if len(self.x) == 0:
                raise RuntimeError("IsotonicCalibrator is not fitted")
            return np.full(np.shape(scores), float(self.y[0]))
        return np.interp(scores, self.x, self.y)

    def state(self) -> dict[str, Any]:
        """Knots and values as plain lists."""
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IsotonicCalibrator:
        """Inverse of :meth:`state`."""
        return cls(np.asarray(state["x"], dtype=np.float64), np.asarray(state["y"], dtype=np.float64))


def _ece(p: np.ndarray, y: np.ndarray) -> float:
    b = ece_bin(p)
    return float(np.abs(np.bincount(b, y - p, minlength=10)).sum() / len(p))


def _calibration_helps(score: np.ndarray, outcome: np.ndarray, seed: int, folds: int = 5) -> bool:
    """True when isotonic calibration lowers held-out ECE (5-fold CV on the reference)."""
    idx = np.random.default_rng(seed).permutation(len(score))
    raw, cal = 0.0, 0.0
    for part in np.array_split(idx, folds):
        train = np.setdiff1d(idx, part, assume_unique=True)
        iso = IsotonicCalibrator().fit(score[train], outcome[train])
        raw += _ece(score[part], outcome[part])
        cal += _ece(iso(score[part]), outcome[part])
    return cal < raw


# ----------------------------------------------------------------------------- summary


@dataclass(slots=True)
class CBPESummary:
    """Mergeable label-free window state: expected confusion and expected score histograms.

    ``mass[c, 0, b]`` / ``mass[c, 1, b]``: expected positive / negative mass of class ``c``
    (binary: one row, the positive class) among rows whose score falls in bin ``b`` of
    ``n_bins`` equal-width bins on [0, 1]. ROC/PR AUC from it treat a bin as tied.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=4000)
    >>> est = CBPE(metrics=("accuracy",)).fit(p[:2000], (rng.uniform(size=2000) < p[:2000]).astype(int))
    >>> s = est.summarise(p[2000:3000])
    >>> s += est.summarise(p[3000:])
    >>> bool(abs(s.estimate(["accuracy"])["accuracy"] - est.estimate(p[2000:])["accuracy"]) < 1e-9)
    True
    """

    confusion: np.ndarray  # (k, k) expected counts [true, pred]
    mass: np.ndarray       # (c, 2, n_bins)

    def __iadd__(self, other: CBPESummary) -> CBPESummary:
        if self.confusion.shape != other.confusion.shape or self.mass.shape != other.mass.shape:
            raise ValueError("cannot merge CBPE summaries of different shapes")
        self.confusion = self.confusion + other.confusion
        self.mass = self.mass + other.mass
        return self

    def estimate(self, metrics: Sequence[str] = CBPE_METRICS) -> dict[str, float]:
        n_bins = self.mass.shape[2]
        centres = (np.arange(n_bins) + 0.5) / n_bins
        return _from_expectations(self.confusion, metrics, lambda c, f: f(centres, self.mass[c, 0][None],
                                                                            self.mass[c, 1][None])[0])

    def state(self) -> dict[str, Any]:
        """Plain JSON-able state."""
        return {"confusion": self.confusion.tolist(), "mass": self.mass.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CBPESummary:
        """Inverse of :meth:`state`."""
        return cls(np.asarray(state["confusion"], dtype=np.float64), np.asarray(state["mass"], dtype=np.float64))


_Curve = Callable[[int, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]], float]


def _from_expectations(conf: np.ndarray, metrics: Sequence[str], curve: _Curve) -> dict[str, float]:
    """Metrics from an expected confusion matrix and a per-class curve function."""
    k = conf.shape[0]
    tp, pred_tot, true_tot = np.diag(conf), conf.sum(axis=0), conf.sum(axis=1)
    prec, rec, f1 = _div(tp, pred_tot), _div(tp, true_tot), _div(2 * tp, pred_tot + true_tot)
    cls = [0] if k == 2 else list(range(k))
    pick = (lambda a: float(a[1])) if k == 2 else (lambda a: float(_nanmean_last(a)))
    out: dict[str, float] = {}
    for m in metrics:
        if m == "accuracy":
            out[m] = float(_div(tp.sum(), conf.sum()))
        elif m in ("precision", "recall", "f1"):
            out[m] = pick({"precision": prec, "recall": rec, "f1": f1}[m])
        elif m in ("roc_auc", "pr_auc"):
            f = pair_auc if m == "roc_auc" else _average_precision
            vals = np.array([curve(c, f) for c in cls])
            out[m] = float(vals[0]) if k == 2 else float(_nanmean_last(vals))
    return out


# ----------------------------------------------------------------------------- estimator


class CBPE:
    """Label-free performance estimate for a classifier (see the module docstring).

    ``labels`` (multiclass) gives the class order of the ``scores`` columns; binary scores are
    the positive-class probability and labels are 0/1. ``threshold`` turns binary scores into
    predictions when ``y_pred`` is not given.
    """

    def __init__(self, task: str = "binary", metrics: Sequence[str] = CBPE_METRICS, *,
                 calibration: str = "isotonic", threshold: float = 0.5, n_bins: int = 1000, seed: int = 0) -> None:
        if task == "regression":
            raise ValueError("task='regression': CBPE is not available for regression (it needs class "
                             "probabilities); use a direct loss estimator instead")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        bad = [m for m in metrics if m not in CBPE_METRICS]
        if bad or not metrics:
            raise ValueError(f"metrics must be a non-empty subset of {CBPE_METRICS}, got {metrics!r}")
        if calibration not in ("auto", "isotonic", "none"):
            raise ValueError(f"calibration must be 'auto', 'isotonic' or 'none', got {calibration!r}")
        check_real("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
        check_int("n_bins", n_bins, 2)
        check_int("seed", seed, 0)
        self.task = task
        self.metrics = tuple(metrics)
        self.calibration = calibration
        self.threshold = threshold
        self.n_bins = n_bins
        self.seed = seed
        self._k = 2
        self._calibrators: list[IsotonicCalibrator | None] | None = None

    # -- fitting ---------------------------------------------------------------------------

    def _as_matrix(self, scores: Any) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.task == "binary":
            if s.ndim != 1:
                raise ValueError(f"binary scores must be 1-d positive-class probabilities, got shape {s.shape}")
            s = np.column_stack([1.0 - s, s])
        elif s.ndim != 2 or (self._calibrators is not None and s.shape[1] != self._k):
            raise ValueError(f"multiclass scores must have shape (n, {self._k}), got {s.shape}")
        if not np.isfinite(s).all():
            raise ValueError("scores hold NaN or infinite values")
        return s

    def fit(self, reference_scores: Any, reference_labels: Any) -> Self:
        """Fit the calibrator(s) on reference scores and labels (labels are class indices 0..k-1)."""
        s = self._as_matrix(reference_scores)
        y = np.asarray(reference_labels)
        if y.dtype == bool:
            y = y.astype(np.int64)
        if y.shape != (len(s),):
            raise ValueError(f"reference_labels shape {y.shape} does not match {len(s)} scores")
        k = s.shape[1]
        if not np.isin(y, np.arange(k)).all():
            raise ValueError(f"reference_labels must be class indices in 0..{k - 1}")
        self._k = k
        cols = [1] if k == 2 else list(range(k))
        cals: list[IsotonicCalibrator | None] = []
        for c in cols:
            outcome = (y == c).astype(np.float64)
            use = self.calibration == "isotonic" or (
                self.calibration == "auto" and len(y) >= 50 and _calibration_helps(s[:, c], outcome, self.seed))
            cals.append(IsotonicCalibrator().fit(s[:, c], outcome) if use else None)
        self._calibrators = cals
        return self

    def _fitted(self) -> list[IsotonicCalibrator | None]:
        if self._calibrators is None:
            raise ValueError("CBPE is not fitted: call fit(reference_scores, reference_labels) first")
        return self._calibrators

    # -- estimation ------------------------------------------------------------------------

    def calibrate(self, scores: Any) -> np.ndarray:
        """Calibrated class probabilities, ``(n, k)`` (binary: ``[1 - p, p]``)."""
        cals = self._fitted()
        s = self._as_matrix(scores)
        if self._k == 2:
            p = s[:, 1] if cals[0] is None else cals[0](s[:, 1])
            return np.column_stack([1.0 - p, p])
        cal = np.column_stack([s[:, c] if f is None else f(s[:, c]) for c, f in enumerate(cals)])
        tot = cal.sum(axis=1, keepdims=True)
        return np.where(tot > 0, cal / np.where(tot > 0, tot, 1.0), s)

    def _predictions(self, s: np.ndarray, y_pred: Any) -> np.ndarray:
        if y_pred is None:
            return (s[:, 1] >= self.threshold).astype(np.int64) if self._k == 2 else s.argmax(axis=1)
        yp = np.asarray(y_pred)
        if yp.dtype == bool:
            yp = yp.astype(np.int64)
        if yp.shape != (len(s),) or not np.isin(yp, np.arange(self._k)).all():
            raise ValueError(f"y_pred must be {len(s)} class indices in 0..{self._k - 1}")
        return yp.astype(np.int64)

    def expected_errors(self, scores: Any, y_pred: Any = None) -> np.ndarray:
        """Per row, the calibrated probability that the prediction is wrong."""
        p = self.calibrate(scores)
        pred = self._predictions(self._as_matrix(scores), y_pred)
        return 1.0 - p[np.arange(len(p)), pred]

    def estimate(self, scores: Any, y_pred: Any = None) -> dict[str, float]:
        """Estimated metrics on a window (no labels); exact CBPE curves, no binning."""
        s = self._as_matrix(scores)
        if len(s) == 0:
            raise ValueError("scores is empty")
        p = self.calibrate(scores)
        pred = self._predictions(s, y_pred)
        conf = p.T @ np.eye(self._k)[pred]  # [true, pred] expected counts

        def curve(c: int, f: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> float:
            col = 1 if self._k == 2 else c
            return f(s[:, col], p[None, :, col], 1.0 - p[None, :, col])[0]

        return _from_expectations(conf, self.metrics, curve)

    def summarise(self, scores: Any, y_pred: Any = None) -> CBPESummary:
        """Mergeable state of a window; ``summary.estimate()`` approximates :meth:`estimate`."""
        s = self._as_matrix(scores)
        p = self.calibrate(scores)
        pred = self._predictions(s, y_pred)
        cols = [1] if self._k == 2 else list(range(self._k))
        mass = np.zeros((len(cols), 2, self.n_bins))
        for j, c in enumerate(cols):
            b = np.clip((s[:, c] * self.n_bins).astype(np.int64), 0, self.n_bins - 1)
            mass[j, 0] = np.bincount(b, p[:, c], minlength=self.n_bins)
            mass[j, 1] = np.bincount(b, 1.0 - p[:, c], minlength=self.n_bins)
        return CBPESummary(p.T @ np.eye(self._k)[pred], mass)

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Parameters and fitted calibrators as plain JSON numbers."""
        cals = self._fitted()
        return {"task": self.task, "metrics": list(self.metrics), "calibration": self.calibration,
                "threshold": self.threshold, "n_bins": self.n_bins, "seed": self.seed, "k": self._k,
                "calibrators": [None if c is None else c.state() for c in cals]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CBPE:
        """Inverse of :meth:`state`."""
        est = cls(state["task"], tuple(state["metrics"]), calibration=state["calibration"],
                  threshold=state["threshold"], n_bins=state["n_bins"], seed=state["seed"])
        est._k = int(state["k"])
        est._calibrators = [None if c is None else IsotonicCalibrator.from_state(c) for c in state["calibrators"]]
        return est
