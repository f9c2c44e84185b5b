"""Realized model performance: exact metrics, confidence intervals, mergeable summaries, segments.

Every metric is computed by one vectorised numpy engine that takes a matrix of row weights
``(B, n)``: the point estimate uses weights of one, a bootstrap replicate uses multinomial
counts, so the exact value and its bootstrap share one code path (no scikit-learn at run time;
scikit-learn is the test oracle).

Conventions (equal to scikit-learn's where it has the metric):

* binary: ``labels[-1]`` is the positive class (``[0, 1]`` when the values are 0/1 or bool);
  ``score`` is the positive-class probability. precision/recall/f1 are the positive class's.
* multiclass: ``scores`` is ``(n, k)`` with columns in ``labels`` order; precision, recall, f1,
  roc_auc (one-vs-rest) and pr_auc (average precision) are macro averages over classes.
* an undefined value is NaN, never a silent 0: precision with no predicted positives, ROC AUC or
  PR AUC with a single class present (scikit-learn's ``zero_division=np.nan``). A macro average
  skips undefined classes (NaN if all are).
* log_loss clips probabilities to ``[eps, 1 - eps]`` (float64 eps); ECE uses 10 equal-width bins
  on ``[0, 1]`` of the positive-class probability (binary) or the top-label confidence
  (multiclass): ``sum_b n_b / n * |mean(outcome_b) - mean(confidence_b)|``.

Confidence intervals (``classification_performance``): accuracy and binary precision/recall use
the Wilson score interval; binary ROC AUC uses DeLong's variance (normal approximation, clipped to
[0, 1]); every other metric uses a seeded, vectorised percentile bootstrap (``n_boot``
replicates; ``n_boot=0`` leaves the bounds NaN). References: E. B. Wilson (1927), JASA 22;
E. R. DeLong et al. (1988), Biometrics 44; B. Efron & R. Tibshirani (1993).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.intervals import delong_interval, hanley_mcneil_interval, wilson_interval
from detectors.result import as_float

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "ece")
SCORE_METRICS = frozenset({"roc_auc", "pr_auc", "log_loss", "ece"})
REGRESSION_METRICS = ("mae", "rmse", "mape")
ECE_BINS = 10
_EPS = float(np.finfo(np.float64).eps)
_BOOT_CHUNK = 64


@dataclass(frozen=True, slots=True)
class PerformanceResult:
    """One metric with its confidence interval.

    ``support_ok`` is False when ``n < min_support`` or the metric is undefined on these rows
    (e.g. ROC AUC with one class): such a value must not be read as a drop. An undefined value
    or bound is NaN (``null`` once orjson wrote it; :meth:`from_dict` reads it back as NaN).

    >>> r = PerformanceResult("accuracy", 0.9, 0.85, 0.94, 200, True)
    >>> r.to_dict()
    {'metric': 'accuracy', 'value': 0.9, 'lower': 0.85, 'upper': 0.94, 'n': 200, 'support_ok': True}
    >>> PerformanceResult.from_dict(r.to_dict()) == r
    True
    """

    metric: str
    value: float
    lower: float
    upper: float
    n: int
    support_ok: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field."""
        return {"metric": self.metric, "value": float(self.value), "lower": float(self.lower),
                "upper": float(self.upper), "n": int(self.n), "support_ok": bool(self.support_ok)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerformanceResult:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["metric"]), as_float(d["value"]), as_float(d["lower"]), as_float(d["upper"]),
                   int(d["n"]), bool(d["support_ok"]))


# ----------------------------------------------------------------------------- inputs


def _resolve_labels(y_true: np.ndarray, y_pred: np.ndarray | None, labels: Sequence[Any] | None,
                    binary_score: bool) -> np.ndarray:
    if labels is not None:
        out = np.asarray(labels)
        if out.ndim != 1 or len(out) == 0 or len(np.unique(out)) != len(out):
            raise ValueError(f"labels must be a non-empty sequence of distinct values, got {labels!r}")
        return out
    seen = y_true if y_pred is None else np.concatenate([y_true, y_pred])
    out = np.unique(seen)
    if binary_score and len(out) < 2:
        if out.dtype == bool or np.isin(out, [0, 1]).all():
            return np.array([0, 1], dtype=out.dtype if out.dtype != bool else np.int64)
        raise ValueError(f"binary score given but only one label ({out!r}) is present: pass labels=")
    return out


def _encode(values: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.clip(np.searchsorted(sorted_labels, values), 0, len(labels) - 1)
    if not np.array_equal(sorted_labels[pos], values):
        bad = values[sorted_labels[pos] != values][:5]
        raise ValueError(f"{name} holds values outside labels: {bad!r}")
    return order[pos]


@dataclass(frozen=True, slots=True)
class _Encoded:
    y: np.ndarray            # (n,) class index
    pred: np.ndarray | None  # (n,) class index
    proba: np.ndarray | None  # (n, k) class probabilities (binary: [1 - score, score])
    k: int


def _prepare(y_true: Any, y_pred: Any, score: Any, scores: Any, labels: Sequence[Any] | None
             ) -> tuple[_Encoded, np.ndarray]:
    yt = np.asarray(y_true)
    yp = None if y_pred is None else np.asarray(y_pred)
    if yt.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {yt.shape}")
    if yp is not None and yp.shape != yt.shape:
        raise ValueError(f"y_pred shape {yp.shape} differs from y_true shape {yt.shape}")
    if score is not None and scores is not None:
        raise ValueError("pass either score (binary) or scores (multiclass), not both")
    if yt.dtype == bool:
        yt = yt.astype(np.int64)
    if yp is not None and yp.dtype == bool:
        yp = yp.astype(np.int64)
    lab = _resolve_labels(yt, yp, labels, binary_score=score is not None)
    k = len(lab)
    proba = None
    if score is not None:
        s = np.asarray(score, dtype=np.float64)
        if s.shape != yt.shape:
            raise ValueError(f"score shape {s.shape} differs from y_true shape {yt.shape}")
        if k != 2:
            raise ValueError(f"score is the binary positive-class probability but there are {k} labels")
        proba = np.column_stack([1.0 - s, s])
    elif scores is not None:
        proba = np.asarray(scores, dtype=np.float64)
        if proba.shape != (len(yt), k):
            raise ValueError(f"scores must have shape {(len(yt), k)} (rows, labels), got {proba.shape}")
    if proba is not None and not np.isfinite(proba).all():
        raise ValueError("scores hold NaN or infinite values")
    enc = _Encoded(_encode(yt, lab, "y_true"), None if yp is None else _encode(yp, lab, "y_pred"), proba, k)
    return enc, lab


# ----------------------------------------------------------------------------- weighted engine


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean_last(a: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(a)
    cnt = ok.sum(axis=-1)
    return _div(np.where(ok, a, 0.0).sum(axis=-1), cnt)


def pair_auc(score: np.ndarray, pos_w: np.ndarray, neg_w: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC: P(score_pos > score_neg) + P(tie) / 2, per weight row.

    ``pos_w``/``neg_w`` are ``(B, n)`` positive/negative masses of each row (labels and
    bootstrap counts, or CBPE's calibrated ``p`` and ``1 - p``). Ties count one half, which equals
    the trapezoidal area under the ROC curve over distinct thresholds. NaN when a mass is zero.
    """
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1] if len(s) else np.zeros(0, dtype=np.intp)
    if len(s) == 0:
        return np.full(pos_w.shape[0], np.nan)
    gp = np.add.reduceat(pos_w[:, order], starts, axis=1)
    gn = np.add.reduceat(neg_w[:, order], starts, axis=1)
    neg_below = np.cumsum(gn, axis=1) - gn
    num = (gp * (neg_below + 0.5 * gn)).sum(axis=1)
    return _div(num, gp.sum(axis=1) * gn.sum(axis=1))


def _average_precision(score: np.ndarray, pos_w: np.ndarray, neg_w: np.ndarray) -> np.ndarray:
    """Average precision sum_k (R_k - R_{k-1}) P_k over distinct thresholds (scikit-learn's)."""
    if len(score) == 0:
        return np.full(pos_w.shape[0], np.nan)
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    gp = np.add.reduceat(pos_w[:, order], starts, axis=1)
    gn = np.add.reduceat(neg_w[:, order], starts, axis=1)
    tp = np.cumsum(gp, axis=1)
    fp = np.cumsum(gn, axis=1)
    prec = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
    return _div((gp * prec).sum(axis=1), tp[:, -1])


def _classification_core(enc: _Encoded, w: np.ndarray, wanted: Iterable[str]) -> dict[str, np.ndarray]:
    """Every requested metric for each weight row of ``w`` (B, n) -> {metric: (B,)}."""
    wanted = set(wanted)
    k, y = enc.k, enc.y
    out: dict[str, np.ndarray] = {}
    total = w.sum(axis=1)
    onehot_y = np.zeros((len(y), k))
    onehot_y[np.arange(len(y)), y] = 1.0
    if enc.pred is not None and wanted & {"accuracy", "precision", "recall", "f1"}:
        cell = np.zeros((len(y), k * k))
        cell[np.arange(len(y)), y * k + enc.pred] = 1.0
        conf = (w @ cell).reshape(-1, k, k)  # [b, true, pred]
        tp = np.diagonal(conf, axis1=1, axis2=2)
        pred_tot = conf.sum(axis=1)
        true_tot = conf.sum(axis=2)
        out["accuracy"] = _div(tp.sum(axis=1), total)
        prec = _div(tp, pred_tot)
        rec = _div(tp, true_tot)
        f1 = _div(2 * tp, pred_tot + true_tot)
        if k == 2:
            out["precision"], out["recall"], out["f1"] = prec[:, 1], rec[:, 1], f1[:, 1]
        else:
            out["precision"], out["recall"], out["f1"] = _nanmean_last(prec), _nanmean_last(rec), _nanmean_last(f1)
    if enc.proba is not None:
        p = enc.proba
        cls = [1] if k == 2 else range(k)
        if "roc_auc" in wanted:
            aucs = np.stack([pair_auc(p[:, c], w * onehot_y[:, c], w * (1 - onehot_y[:, c])) for c in cls], axis=1)
            out["roc_auc"] = aucs[:, 0] if k == 2 else _nanmean_last(aucs)
        if "pr_auc" in wanted:
            aps = np.stack([_average_precision(p[:, c], w * onehot_y[:, c], w * (1 - onehot_y[:, c]))
                            for c in cls], axis=1)
            out["pr_auc"] = aps[:, 0] if k == 2 else _nanmean_last(aps)
        if "log_loss" in wanted:
            clipped = np.clip(p, _EPS, 1 - _EPS)
            clipped = clipped / clipped.sum(axis=1, keepdims=True)
            loss = -np.log(clipped[np.arange(len(y)), y])
            out["log_loss"] = _div(w @ loss, total)
        if "ece" in wanted:
            if k == 2:
                confidence, outcome = p[:, 1], onehot_y[:, 1]
            else:
                confidence, outcome = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
            b = ece_bin(confidence)
            onehot_b = np.zeros((len(y), ECE_BINS))
            onehot_b[np.arange(len(y)), b] = 1.0
            gap = w @ (onehot_b * (outcome - confidence)[:, None])
            out["ece"] = _div(np.abs(gap).sum(axis=1), total)
    return out


def ece_bin(confidence: np.ndarray) -> np.ndarray:
    """Index of the equal-width calibration bin: 10 bins (a, b] on [0, 1] (scikit-learn >= 1.5 calibration_curve)."""
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    return np.searchsorted(edges[1:-1], confidence, side="left")


# ----------------------------------------------------------------------------- public: metrics


def weighted_metric(metric: str, weights: Any, y_true: Any, y_pred: Any = None, score: Any = None,
                    scores: Any = None, labels: Sequence[Any] | None = None) -> np.ndarray:
    """``metric`` under each row of ``weights`` ``(B, n)`` (or one ``(n,)`` vector): ``(B,)`` values.

    Non-negative row weights act as frequency weights: integer counts give the metric of the
    sample with rows repeated (a bootstrap replicate), importance weights give the metric of the
    population they reweight the rows to (a density-ratio estimate of performance under another
    input distribution). Same engine and conventions as :func:`classification_metrics` /
    :func:`regression_metrics`.

    >>> weighted_metric("accuracy", [1, 1, 2, 0], [0, 1, 1, 0], [0, 1, 0, 1]).round(3).tolist()
    [0.5]
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w[None, :] if w.ndim == 1 else w
    if w.ndim != 2 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be a finite non-negative (B, n) or (n,) array, got shape {w.shape}")
    if metric in REGRESSION_METRICS:
        y, yhat = _regression_arrays(y_true, y_pred)
        if w.shape[1] != len(y):
            raise ValueError(f"weights have {w.shape[1]} columns for {len(y)} rows")
        return _regression_core(y, yhat, w)[metric]
    if metric not in CLASSIFICATION_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {[*CLASSIFICATION_METRICS, *REGRESSION_METRICS]}")
    enc, _ = _prepare(y_true, y_pred, score, scores, labels)
    if w.shape[1] != len(enc.y):
        raise ValueError(f"weights have {w.shape[1]} columns for {len(enc.y)} rows")
    if metric in SCORE_METRICS and enc.proba is None:
        raise ValueError(f"metric {metric!r} needs score (binary) or scores (multiclass)")
    if metric not in SCORE_METRICS and enc.pred is None:
        raise ValueError(f"metric {metric!r} needs y_pred")
    return _classification_core(enc, w, [metric])[metric]


def classification_metrics(y_true: Any, y_pred: Any, score: Any = None, scores: Any = None,
                           labels: Sequence[Any] | None = None) -> dict[str, float]:
    """Exact accuracy, precision, recall, f1 and (with scores) roc_auc, pr_auc, log_loss, ece.

    Metrics that need probabilities are left out when neither ``score`` nor ``scores`` is given.
    See the module docstring for conventions and undefined values (NaN).

    >>> classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], score=[0.1, 0.9, 0.4, 0.3])["roc_auc"]
    1.0
    """
    enc, _ = _prepare(y_true, y_pred, score, scores, labels)
    if len(enc.y) == 0:
        raise ValueError("y_true is empty")
    wanted = [m for m in CLASSIFICATION_METRICS if enc.proba is not None or m not in SCORE_METRICS]
    res = _classification_core(enc, np.ones((1, len(enc.y))), wanted)
    return {m: float(res[m][0]) for m in wanted}


def _regression_core(y: np.ndarray, yhat: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    err = y - yhat
    total = w.sum(axis=1)
    return {"mae": _div(w @ np.abs(err), total),
            "rmse": np.sqrt(_div(w @ err**2, total)),
            "mape": _div(w @ (np.abs(err) / np.maximum(np.abs(y), _EPS)), total)}


def _regression_arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    yhat = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or y.shape != yhat.shape or len(y) == 0:
        raise ValueError(f"y_true and y_pred must be non-empty 1-d arrays of one shape, got {y.shape}, {yhat.shape}")
    if not (np.isfinite(y).all() and np.isfinite(yhat).all()):
        raise ValueError("regression targets/predictions hold NaN or infinite values")
    return y, yhat


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MAE, RMSE and MAPE (``|e| / max(|y|, eps)``, a fraction, as scikit-learn).

    >>> regression_metrics([1.0, 2.0], [1.0, 4.0])["mae"]
    1.0
    """
    y, yhat = _regression_arrays(y_true, y_pred)
    return {m: float(v[0]) for m, v in _regression_core(y, yhat, np.ones((1, len(y)))).items()}


def _bootstrap(core: Callable[[np.ndarray], dict[str, np.ndarray]], n: int, n_boot: int, seed: int,
               confidence: float) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    reps: list[dict[str, np.ndarray]] = []
    done = 0
    while done < n_boot:
        b = min(_BOOT_CHUNK, n_boot - done)
        reps.append(core(rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)))
        done += b
    alpha = (1 - confidence) / 2
    out = {}
    for m in reps[0]:
        vals = np.concatenate([r[m] for r in reps])
        vals = vals[~np.isnan(vals)]
        out[m] = ((float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha)))
                  if len(vals) else (float("nan"), float("nan")))
    return out


def _check_ci_params(confidence: float, n_boot: int, min_support: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot!r}")
    if min_support < 0:
        raise ValueError(f"min_support must be >= 0, got {min_support!r}")


def classification_performance(y_true: Any, y_pred: Any, score: Any = None, scores: Any = None,
                               labels: Sequence[Any] | None = None, *, metrics: Iterable[str] | None = None,
                               confidence: float = 0.95, n_boot: int = 200, seed: int = 0,
                               min_support: int = 30) -> dict[str, PerformanceResult]:
    """Metrics with confidence intervals (Wilson / DeLong / seeded bootstrap, see module doc).

    >>> r = classification_performance([0, 1] * 50, [0, 1] * 50, n_boot=0)["accuracy"]
    >>> (r.value, r.n, r.support_ok)
    (1.0, 100, True)
    """
    _check_ci_params(confidence, n_boot, min_support)
    enc, _ = _prepare(y_true, y_pred, score, scores, labels)
    n = len(enc.y)
    if n == 0:
        raise ValueError("y_true is empty")
    available = [m for m in CLASSIFICATION_METRICS if enc.proba is not None or m not in SCORE_METRICS]
    wanted = available if metrics is None else list(metrics)
    unknown = set(wanted) - set(available)
    if unknown:
        raise ValueError(f"metrics not available here: {sorted(unknown)} (available: {available})")
    point = _classification_core(enc, np.ones((1, n)), wanted)
    analytic: dict[str, tuple[float, float]] = {}
    if enc.pred is not None:
        correct = float((enc.y == enc.pred).sum())
        analytic["accuracy"] = wilson_interval(correct, n, confidence)
        if enc.k == 2:
            tp = float(((enc.y == 1) & (enc.pred == 1)).sum())
            analytic["precision"] = wilson_interval(tp, float((enc.pred == 1).sum()), confidence)
            analytic["recall"] = wilson_interval(tp, float((enc.y == 1).sum()), confidence)
    if enc.proba is not None and enc.k == 2:
        _, lo, hi = delong_interval(enc.proba[:, 1], enc.y == 1, confidence)
        analytic["roc_auc"] = (lo, hi)
    rest = [m for m in wanted if m not in analytic]
    boot = (_bootstrap(lambda w: _classification_core(enc, w, rest), n, n_boot, seed, confidence)
            if rest and n_boot > 0 else {})
    out = {}
    for m in wanted:
        value = float(point[m][0])
        lo, hi = analytic.get(m) or boot.get(m) or (float("nan"), float("nan"))
        out[m] = PerformanceResult(m, value, lo, hi, n, bool(n >= min_support and np.isfinite(value)))
    return out


def regression_performance(y_true: Any, y_pred: Any, *, confidence: float = 0.95, n_boot: int = 200,
                           seed: int = 0, min_support: int = 30) -> dict[str, PerformanceResult]:
    """MAE, RMSE, MAPE with seeded percentile-bootstrap intervals (``n_boot=0``: NaN bounds).

    >>> r = regression_performance([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0], n_boot=0, min_support=4)
    >>> r["mae"].value, r["mae"].support_ok
    (0.25, True)
    """
    _check_ci_params(confidence, n_boot, min_support)
    y, yhat = _regression_arrays(y_true, y_pred)
    n = len(y)
    point = _regression_core(y, yhat, np.ones((1, n)))
    boot = _bootstrap(lambda w: _regression_core(y, yhat, w), n, n_boot, seed, confidence) if n_boot else {}
    nan2 = (float("nan"), float("nan"))
    return {m: PerformanceResult(m, float(v[0]), *boot.get(m, nan2), n, n >= min_support)
            for m, v in point.items()}


# ----------------------------------------------------------------------------- mergeable summary


@dataclass(slots=True)
class ConfusionSummary:
    """Bounded, mergeable classification summary of a window (per partition, per replica).

    Holds the confusion counts ``[true, pred]``, per true class a histogram of each class's
    probability on ``n_bins`` equal-width bins over [0, 1] (binary: the positive class only), the
    log-loss sum and the 10 calibration-bin sums ``(count, sum confidence, sum outcome)``.
    Accuracy/precision/recall/f1/log_loss/ece are exact; roc_auc and pr_auc treat scores in one
    bin as tied (error below ~1/n_bins for continuous scores; exact when scores are rounded to
    the bin grid). Intervals: Wilson, and Hanley-McNeil for binary AUC; others have NaN bounds.

    >>> a = ConfusionSummary.from_arrays([0, 1], [0, 1], score=[0.2, 0.7], labels=[0, 1])
    >>> a += ConfusionSummary.from_arrays([1, 0], [0, 0], score=[0.4, 0.1], labels=[0, 1])
    >>> a.metrics()["accuracy"], a.metrics()["roc_auc"]
    (0.75, 1.0)
    """

    labels: tuple[Any, ...]
    confusion: np.ndarray
    score_hist: np.ndarray | None
    loss_sum: float = 0.0
    calib: np.ndarray = field(default_factory=lambda: np.zeros((3, ECE_BINS)))

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def n_bins(self) -> int:
        return 0 if self.score_hist is None else self.score_hist.shape[2]

    @classmethod
    def from_arrays(cls, y_true: Any, y_pred: Any, score: Any = None, scores: Any = None, *,
                    labels: Sequence[Any], n_bins: int = 1000) -> ConfusionSummary:
        """Summarise one batch; ``labels`` is required so that summaries line up when merged."""
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins!r}")
        if y_pred is None:
            raise ValueError("y_pred is required for a ConfusionSummary")
        enc, lab = _prepare(y_true, y_pred, score, scores, labels)
        k = enc.k
        conf = np.bincount(enc.y * k + enc.pred, minlength=k * k).reshape(k, k)
        hist = None
        loss_sum = 0.0
        calib = np.zeros((3, ECE_BINS))
        if enc.proba is not None:
            cols = [1] if k == 2 else list(range(k))
            p = enc.proba[:, cols]
            b = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
            hist = np.zeros((k, len(cols), n_bins), dtype=np.int64)
            for j in range(len(cols)):
                hist[:, j, :] = np.bincount(enc.y * n_bins + b[:, j], minlength=k * n_bins).reshape(k, n_bins)
            w = np.ones((1, len(enc.y)))
            core = _classification_core(enc, w, ["log_loss"])
            loss_sum = float(core["log_loss"][0] * len(enc.y))
            if k == 2:
                confidence, outcome = enc.proba[:, 1], (enc.y == 1).astype(np.float64)
            else:
                confidence = enc.proba.max(axis=1)
                outcome = (enc.proba.argmax(axis=1) == enc.y).astype(np.float64)
            eb = ece_bin(confidence)
            calib = np.stack([np.bincount(eb, minlength=ECE_BINS).astype(np.float64),
                              np.bincount(eb, confidence, minlength=ECE_BINS),
                              np.bincount(eb, outcome, minlength=ECE_BINS)])
        return cls(tuple(lab.tolist()), conf.astype(np.int64), hist, loss_sum, calib)

    def __iadd__(self, other: ConfusionSummary) -> ConfusionSummary:
        if self.labels != other.labels:
            raise ValueError(f"cannot merge summaries over different labels: {self.labels} vs {other.labels}")
        if (self.score_hist is None) != (other.score_hist is None) or self.n_bins != other.n_bins:
            raise ValueError("cannot merge summaries with different score histograms")
        self.confusion = self.confusion + other.confusion
        if self.score_hist is not None:
            self.score_hist = self.score_hist + other.score_hist
        self.loss_sum += other.loss_sum
        self.calib = self.calib + other.calib
        return self

    def _auc_ap(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        hist = self.score_hist
        k = len(self.labels)
        centres = (np.arange(self.n_bins) + 0.5) / self.n_bins
        cls = [1] if k == 2 else list(range(k))
        aucs, aps, npos, nneg = [], [], [], []
        for j, c in enumerate(cls):
            pos = hist[c, j].astype(np.float64)[None]
            neg = (hist[:, j].sum(axis=0) - hist[c, j]).astype(np.float64)[None]
            aucs.append(pair_auc(centres, pos, neg)[0])
            aps.append(_average_precision(centres, pos, neg)[0])
            npos.append(pos.sum())
            nneg.append(neg.sum())
        return np.array(aucs), np.array(aps), np.array(npos), np.array(nneg)

    def metrics(self) -> dict[str, float]:
        """Point values (see the class docstring for which are approximate)."""
        return {m: r.value for m, r in self.results().items()}

    def results(self, confidence: float = 0.95, min_support: int = 30) -> dict[str, PerformanceResult]:
        """Metrics with analytic intervals where the summary allows them (others: NaN bounds)."""
        _check_ci_params(confidence, 0, min_support)
        k, n = len(self.labels), self.n
        c = self.confusion.astype(np.float64)
        tp, pred_tot, true_tot = np.diag(c), c.sum(axis=0), c.sum(axis=1)
        nan2 = (float("nan"), float("nan"))
        vals: dict[str, tuple[float, tuple[float, float]]] = {}
        vals["accuracy"] = (float(_div(tp.sum(), n)), wilson_interval(tp.sum(), n, confidence))
        prec, rec, f1 = _div(tp, pred_tot), _div(tp, true_tot), _div(2 * tp, pred_tot + true_tot)
        if k == 2:
            vals["precision"] = (float(prec[1]), wilson_interval(tp[1], pred_tot[1], confidence))
            vals["recall"] = (float(rec[1]), wilson_interval(tp[1], true_tot[1], confidence))
            vals["f1"] = (float(f1[1]), nan2)
        else:
            for name, arr in (("precision", prec), ("recall", rec), ("f1", f1)):
                vals[name] = (float(_nanmean_last(arr)), nan2)
        if self.score_hist is not None:
            aucs, aps, npos, nneg = self._auc_ap()
            auc = float(aucs[0]) if k == 2 else float(_nanmean_last(aucs))
            ci = hanley_mcneil_interval(auc, npos[0], nneg[0], confidence) if k == 2 else nan2
            vals["roc_auc"] = (auc, ci)
            vals["pr_auc"] = (float(aps[0]) if k == 2 else float(_nanmean_last(aps)), nan2)
            vals["log_loss"] = (float(_div(self.loss_sum, n)), nan2)
            vals["ece"] = (float(_div(np.abs(self.calib[2] - self.calib[1]).sum(), n)), nan2)
        return {m: PerformanceResult(m, v, lo, hi, n, bool(n >= min_support and np.isfinite(v)))
                for m, (v, (lo, hi)) in vals.items()}

    def state(self) -> dict[str, Any]:
        """Plain JSON-ready numbers (labels must be JSON scalars); :meth:`from_state` inverts it."""
        return {"labels": list(self.labels), "confusion": self.confusion.tolist(),
                "score_hist": None if self.score_hist is None else self.score_hist.tolist(),
                "loss_sum": self.loss_sum, "calib": self.calib.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ConfusionSummary:
        """Inverse of :meth:`state`."""
        hist = state["score_hist"]
        return cls(tuple(state["labels"]), np.asarray(state["confusion"], dtype=np.int64),
                   None if hist is None else np.asarray(hist, dtype=np.int64),
                   float(state["loss_sum"]), np.asarray(state["calib"], dtype=np.float64))
