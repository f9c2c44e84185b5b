"""The training-debugging checklist as gates: each a small function returning a :class:`Gate`.

A gate's ``figure`` is compared with its ``threshold``; the detail says how (``<=`` or ``>``) and
what the figure measures. The trainer (:mod:`agent.retrain.trainer`) runs them in order and stops
at the first that fails. The metrics the gates compare (``PRIMARY``): ROC AUC for binary (the
served score ranks the holdout as the challenger's probability does), accuracy for multiclass (a
served label is all a multiclass champion needs), RMSE for regression (lower is better). All are
computed on row weights, so one function gives a point value and a whole bootstrap distribution.

The champion/challenger decision uses :func:`paired_bootstrap`: rows of the holdout are resampled
together for both models (``rng.integers(0, n, (batch, n))`` per batch, as
``scipy.stats.bootstrap(..., paired=True, method="percentile")`` does, so the two agree to the
last bit on the same seed), and the percentile interval of the improvement decides.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from agent.retrain.tabular import Batch, Split, Task
from detectors.performance import pair_auc

__all__ = ["Gate", "json_float", "PRIMARY", "metric_rows", "metric", "BootstrapInterval", "paired_bootstrap",
           "shapes_gate", "dtypes_gate", "finite_gate", "normalised_gate", "baseline_predictions",
           "alignment_predictions", "alignment_loss", "alignment_gate", "row_hashes", "leakage_gate", "symmetry_gate", "chance_loss",
           "init_loss_gate", "gradient_flow_gate", "gradcheck_gate", "overfit_gate", "nonfinite_gate",
           "grad_norm_gate", "loss_decrease_gate", "early_stopping_gate", "baseline_gate",
           "SegmentComparison", "ChampionComparison", "compare_champion", "champion_gate"]


@dataclass(frozen=True, slots=True)
class Gate:
    """One check of the checklist: its figure against its threshold, and whether it passed."""

    name: str
    passed: bool
    figure: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def json_float(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _gate(name: str, passed: bool, figure: float | None, threshold: float | None, detail: str) -> Gate:
    return Gate(name, bool(passed), json_float(figure), json_float(threshold), detail)


# ----------------------------------------------------------------------------- metrics

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


# ----------------------------------------------------------------------------- data gates


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


# ----------------------------------------------------------------------------- initialisation


def symmetry_gate(module: nn.Module) -> Gate:
    """No weight matrix (ndim >= 2, more than one row) has all rows equal: identical units get
    identical gradients and never differentiate."""
    mats = [(n, p) for n, p in module.named_parameters() if p.ndim >= 2 and p.shape[0] > 1]
    flat = torch.cat([p.detach().flatten().float() for p in module.parameters()]) if mats else None
    symmetric = [n for n, p in mats if bool((p.detach() == p.detach()[:1]).all())]
    if not mats:
        return _gate("init.symmetry", True, None, 0, "skipped: no weight matrix with more than one row")
    detail = (f"weight matrices with all rows equal: {symmetric}" if symmetric
              else f"{len(mats)} weight matrices, none with identical rows (<= 0)")
    if flat is not None and bool((flat == flat[0]).all()):
        detail += "; every parameter has the same value"
    return _gate("init.symmetry", not symmetric, len(symmetric), 0, detail)


def chance_loss(task: Task, y: np.ndarray, weight: np.ndarray, n_classes: int) -> float:
    """The loss of the best constant prediction: the entropy of the weighted class prior (ln k when
    balanced), or the weighted variance of the standardised target."""
    w = weight.astype(np.float64) / weight.sum()
    if task == "regression":
        return float((w * (y - (w * y).sum()) ** 2).sum())
    p = np.bincount(y.astype(np.int64), weights=w, minlength=n_classes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def init_loss_gate(loss0: float, chance: float, tolerance: float, n_classes: int) -> Gate:
    dev = abs(loss0 - chance) / chance if chance > 0 else math.inf
    lnk = f" (ln {n_classes} = {math.log(n_classes):.4f})" if n_classes > 1 else ""
    return _gate("init.loss", dev <= tolerance, dev, tolerance,
                 f"train loss at step 0 {loss0:.4f} vs chance {chance:.4f}{lnk}: |loss0-chance|/chance <= {tolerance}")


# ----------------------------------------------------------------------------- gradients


def gradient_flow_gate(module: nn.Module, batch: Batch, task: Task) -> Gate:
    """One backward pass (eval mode): every parameter is trainable and gets a non-zero gradient."""
    module.eval()
    module.zero_grad(set_to_none=True)
    batch.loss(module, task).backward()
    frozen, none, zero = [], [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            frozen.append(name)
        elif p.grad is None:
            none.append(name)
        elif float(p.grad.abs().max()) == 0.0:
            zero.append(name)
    module.zero_grad(set_to_none=True)
    module.train()
    bad = frozen + none + zero
    parts = [f"{what}: {names}" for what, names in (("frozen (requires_grad False)", frozen),
                                                      ("no gradient (detached)", none), ("zero gradient", zero)) if names]
    total = sum(1 for _ in module.parameters())
    return _gate("grad.flow", not bad, len(bad), 0,
                 "; ".join(parts) or f"all {total} parameter tensors get a non-zero gradient (<= 0 without)")


def gradcheck_gate(module: nn.Module, batch: Batch, task: Task) -> Gate:
    """torch.autograd.gradcheck (fast mode) of the loss w.r.t. the trainable parameters on a tiny
    float64 copy of the model and batch; the figure is the relative error of one directional
    derivative against central differences."""
    from torch.func import functional_call

    m = copy.deepcopy(module).to(device="cpu", dtype=torch.float64).eval()
    num = batch.numeric.detach().cpu().double()
    cat = batch.categorical.detach().cpu()
    y = batch.target.detach().cpu()
    y = y if task == "multiclass" else y.double()
    w = batch.weight.detach().cpu().double()
    named = [(n, p.detach().clone().requires_grad_(True)) for n, p in m.named_parameters() if p.requires_grad]
    if not named:
        return _gate("grad.check", False, None, 1e-4, "no trainable parameters")
    names = [n for n, _ in named]
    params = tuple(p for _, p in named)

    def loss(*ps: torch.Tensor) -> torch.Tensor:
        from agent.retrain.tabular import task_loss
        return task_loss(task, functional_call(m, dict(zip(names, ps)), (num, cat)), y, w)

    gen = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    grads = torch.autograd.grad(loss(*params), params, allow_unused=True)
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, direction) if g is not None)
    eps = 1e-6
    with torch.no_grad():
        plus = float(loss(*(p + eps * v for p, v in zip(params, direction))))
        minus = float(loss(*(p - eps * v for p, v in zip(params, direction))))
    numeric = (plus - minus) / (2 * eps)
    rel = abs(analytic - numeric) / max(abs(numeric), abs(analytic), 1e-12)
    ok = torch.autograd.gradcheck(loss, params, eps=eps, atol=1e-5, rtol=1e-3, fast_mode=True,
                                  raise_exception=False)
    return _gate("grad.check", ok, rel, 1e-3,
                 f"gradcheck {'passed' if ok else 'FAILED'} on {len(num)} float64 rows; directional "
                 f"derivative analytic {analytic:.6g} vs numeric {numeric:.6g}")


def overfit_gate(module: nn.Module, batch: Batch, task: Task, *, target: float, max_steps: int, lr: float) -> Gate:
    """A copy of the initialised model (eval mode: no dropout) drives one small batch's loss below
    ``target`` with Adam within ``max_steps``."""
    m = copy.deepcopy(module).eval()
    params = [p for p in m.parameters() if p.requires_grad]
    if not params:
        return _gate("overfit.one_batch", False, None, target, "no trainable parameters")
    opt = torch.optim.Adam(params, lr=lr)
    loss = float("nan")
    for step in range(max_steps + 1):
        value = batch.loss(m, task)
        loss = value.item()
        if loss < target or not math.isfinite(loss) or step == max_steps:
            break
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return _gate("overfit.one_batch", loss < target, loss, target,
                 f"loss on one batch of {len(batch.target)} rows after {step} Adam steps (lr {lr}) < {target}")


# ----------------------------------------------------------------------------- during training


def nonfinite_gate(fault: str | None, steps: int) -> Gate:
    return _gate("train.finite", fault is None, 0 if fault is None else 1, 0,
                 fault or f"loss and gradients finite over {steps} steps (faults <= 0)")


def grad_norm_gate(max_norm: float, reference: float, factor: float, at: str | None) -> Gate:
    """The total gradient norm of every step stays within ``factor`` times its value at step 0."""
    ratio = max_norm / reference if reference > 0 else math.inf
    where = f"; exceeded at {at}" if at else ""
    return _gate("train.grad_norm", at is None and ratio <= factor, ratio, factor,
                 f"max step gradient norm {max_norm:.4g} / step-0 norm {reference:.4g} <= {factor}{where}")


def loss_decrease_gate(init_loss: float, epoch_loss: float, epoch: int, max_ratio: float) -> Gate:
    ratio = epoch_loss / init_loss if init_loss > 0 else math.inf
    return _gate("train.loss_decreasing", ratio <= max_ratio, ratio, max_ratio,
                 f"mean train loss of epoch {epoch} {epoch_loss:.4f} / loss at step 0 {init_loss:.4f} <= {max_ratio}")


def early_stopping_gate(init_val: float, best_val: float, best_epoch: int, epochs_run: int, stopped: bool) -> Gate:
    how = "stopped early" if stopped else "ran all epochs"
    return _gate("train.early_stopping", best_val < init_val, best_val, init_val,
                 f"best validation loss {best_val:.4f} at epoch {best_epoch} (weights restored; {how} "
                 f"after {epochs_run}) < validation loss at step 0 {init_val:.4f}")


def baseline_gate(task: Task, model_metric: float, baseline_metric: float, margin: float) -> Gate:
    name, higher = PRIMARY[task]
    gain = model_metric - baseline_metric if higher else baseline_metric - model_metric
    return _gate("baseline", gain > margin, gain, margin,
                 f"validation {name}: model {model_metric:.4f} vs {'logistic' if task != 'regression' else 'ridge'} "
                 f"baseline {baseline_metric:.4f}; improvement > {margin}")


# ----------------------------------------------------------------------------- champion vs challenger


@dataclass(frozen=True, slots=True)
class SegmentComparison:
    name: str
    rows: int
    champion: float | None
    challenger: float | None
    worse: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class ChampionComparison:
    metric: str
    higher_is_better: bool
    rows: int
    champion: float
    challenger: float
    improvement: BootstrapInterval   # challenger minus champion, signed so that > 0 is better
    segment_margin: float
    segments: tuple[SegmentComparison, ...]

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "higher_is_better": self.higher_is_better, "rows": self.rows,
                "champion": json_float(self.champion), "challenger": json_float(self.challenger),
                "improvement": self.improvement.to_dict(), "segment_margin": self.segment_margin,
                "segments": [{**asdict(s), "champion": json_float(s.champion), "challenger": json_float(s.challenger)}
                             for s in self.segments]}


def compare_champion(task: Task, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, *,
                     segments: Mapping[str, np.ndarray] | None = None, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0, segment_margin: float = 0.02,
                     min_segment_rows: int = 200) -> ChampionComparison:
    """Both models on the same holdout rows (encoded space). A segment is worse when the challenger's
    metric falls below the champion's by more than ``segment_margin`` of it (relative: AUC or
    accuracy below ``champion * (1 - m)``, RMSE above ``champion * (1 + m)``)."""
    name, higher = PRIMARY[task]
    sign = 1.0 if higher else -1.0

    def improvement(w: np.ndarray) -> np.ndarray:
        return sign * (metric_rows(task, y, challenger, w) - metric_rows(task, y, champion, w))

    interval = paired_bootstrap(improvement, len(y), n_resamples=n_resamples, confidence=confidence, seed=seed)
    rows = []
    for seg, mask in (segments or {}).items():
        mask = np.asarray(mask, dtype=bool)
        k = int(mask.sum())
        if k < min_segment_rows:
            rows.append(SegmentComparison(seg, k, None, None, False, f"skipped: {k} rows < {min_segment_rows}"))
            continue
        champ = metric(task, y[mask], champion[mask])
        chall = metric(task, y[mask], challenger[mask])
        if not (math.isfinite(champ) and math.isfinite(chall)):
            rows.append(SegmentComparison(seg, k, json_float(champ), json_float(chall), False, "skipped: metric undefined"))
            continue
        worse = chall < champ * (1 - segment_margin) if higher else chall > champ * (1 + segment_margin)
        rows.append(SegmentComparison(seg, k, champ, chall, bool(worse)))
    return ChampionComparison(name, higher, len(y), metric(task, y, champion), metric(task, y, challenger),
                              interval, segment_margin, tuple(rows))


def champion_gate(c: ChampionComparison, scale: float = 1.0) -> Gate:
    """Promote only when the interval's lower bound of the improvement is above 0 and no segment is
    worse. ``scale`` turns the displayed metric into target units (regression)."""
    worse = [s.name for s in c.segments if s.worse]
    i = c.improvement
    detail = (f"holdout {c.metric} ({c.rows} rows): challenger {c.challenger * scale:.4f} vs champion "
              f"{c.champion * scale:.4f}; improvement {i.estimate * scale:+.4f}, paired-bootstrap "
              f"{100 * i.confidence:.0f}% CI [{i.low * scale:+.4f}, {i.high * scale:+.4f}] (low > 0)")
    checked = sum(1 for s in c.segments if s.champion is not None and not s.note)
    if c.segments:
        detail += (f"; segments worse by > {100 * c.segment_margin:g}%: {worse}" if worse
                   else f"; {checked}/{len(c.segments)} segments checked, none worse by > {100 * c.segment_margin:g}%")
    return _gate("champion", i.low > 0 and not worse, i.low * scale, 0.0, detail)
