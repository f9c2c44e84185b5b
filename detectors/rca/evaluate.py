"""The "evaluate" step of root-cause analysis: how far the metric fell, and how much of the fall
today's inputs explain.

Decomposition. Let ``M_ref`` be the metric of the served model on the reference, ``M_cur`` on
the current rows, and ``M_exp`` the metric the reference would give *if its inputs were
distributed like today's*: the reference rows importance-weighted by the density ratio
``w(x) = p_cur(x) / p_ref(x)``, estimated with a domain classifier,
``w(x) = P(cur | x) / P(ref | x) * n_ref / n_cur`` from out-of-fold probabilities
(:class:`detectors.domain_classifier.DomainClassifierDrift`; Sugiyama et al. 2012, *Density
Ratio Estimation in Machine Learning*). Then, oriented so that a positive number is a loss::

    drop           = M_ref - M_cur              (the realized fall)
    covariate_part = M_ref - M_exp              (explained by the input shift, P(y|x) fixed)
    concept_part   = M_exp - M_cur              (left for P(y|x): concept drift, label noise)

and ``drop = covariate_part + concept_part`` exactly. Weights are clipped at ``clip`` times
their mean (bias for variance; Cortes et al. 2010) and their effective sample size
``ESS = (sum w)^2 / sum w^2`` is reported: a small ESS means today's inputs lie where the
reference has little support and ``M_exp`` is unreliable.

Intervals: a seeded percentile bootstrap (``n_boot`` replicates) that resamples reference and
current rows independently, keeping each reference row's weight (the classifier is fitted once;
its own variance is not propagated, so the intervals are somewhat narrow when ESS is small).

Assumptions: rows independent; the served model's predictions on the reference are those it
would have made (the reference carries ``prediction``/``score`` columns); the domain classifier
is flexible enough to separate what moved (gradient-boosted trees).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors._checks import check_int
from detectors.domain_classifier import DomainClassifierDrift
from detectors.performance import CLASSIFICATION_METRICS, REGRESSION_METRICS, classification_performance, weighted_metric
from detectors.result import as_float

__all__ = ["Estimate", "Evaluation", "WindowMetric", "evaluate_drop", "LOWER_IS_BETTER"]

LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss", "ece"})


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its interval (NaN bounds when none was computed).

    >>> Estimate.from_dict(Estimate(0.8, 0.75, 0.85).to_dict())
    Estimate(value=0.8, lo=0.75, hi=0.85)
    """

    value: float
    lo: float = float("nan")
    hi: float = float("nan")

    @property
    def above_zero(self) -> bool:
        """The interval lies above 0 (a loss that is not chance)."""
        return bool(np.isfinite(self.lo) and self.lo > 0)

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if not np.isfinite(v) else float(v)) for k, v in
                (("value", self.value), ("lo", self.lo), ("hi", self.hi))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Estimate:
        return cls(as_float(d.get("value")), as_float(d.get("lo")), as_float(d.get("hi")))


@dataclass(frozen=True, slots=True)
class WindowMetric:
    """The metric of one window of the current rows, with its interval.

    >>> WindowMetric.from_dict(WindowMetric(3, 0.8, 0.7, 0.9, 500).to_dict()).window_id
    3
    """

    window_id: int
    value: float
    lo: float
    hi: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"window_id": int(self.window_id), **Estimate(self.value, self.lo, self.hi).to_dict(), "n": int(self.n)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowMetric:
        return cls(int(d["window_id"]), as_float(d.get("value")), as_float(d.get("lo")), as_float(d.get("hi")),
                   int(d["n"]))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Which metric fell, by how much, since when, and how much of it the inputs explain.

    ``drop``, ``covariate_part`` and ``concept_part`` are oriented so that positive is worse
    (for lower-is-better metrics, ``current - reference``). ``since_window`` is the first window
    of the trailing run whose interval lies wholly on the worse side of the reference value.

    >>> e = Evaluation("accuracy", Estimate(0.9), Estimate(0.8), Estimate(0.1), Estimate(0.88),
    ...                Estimate(0.02), Estimate(0.08), 1000.0, 2000, 500, 0.6)
    >>> Evaluation.from_dict(e.to_dict()).to_dict() == e.to_dict()
    True
    """

    metric: str
    reference: Estimate
    current: Estimate
    drop: Estimate
    expected: Estimate
    covariate_part: Estimate
    concept_part: Estimate
    ess: float
    n_reference: int
    n_current: int
    domain_auc: float = float("nan")
    since_window: int | None = None
    windows: tuple[WindowMetric, ...] = field(default=())

    @property
    def concept_share(self) -> float:
        """Share of the drop left for P(y|x), clipped to [0, 1]; NaN when there is no drop."""
        if not (np.isfinite(self.drop.value) and self.drop.value > 0):
            return float("nan")
        return float(np.clip(self.concept_part.value / self.drop.value, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric}
        for name in ("reference", "current", "drop", "expected", "covariate_part", "concept_part"):
            out[name] = getattr(self, name).to_dict()
        out.update(ess=as_float(self.ess) if np.isfinite(self.ess) else None, n_reference=int(self.n_reference),
                   n_current=int(self.n_current),
                   domain_auc=float(self.domain_auc) if np.isfinite(self.domain_auc) else None,
                   since_window=self.since_window, windows=[w.to_dict() for w in self.windows])
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evaluation:
        est = {k: Estimate.from_dict(d[k]) for k in ("reference", "current", "drop", "expected", "covariate_part",
                                                      "concept_part")}
        since = d.get("since_window")
        return cls(str(d["metric"]), est["reference"], est["current"], est["drop"], est["expected"],
                   est["covariate_part"], est["concept_part"], as_float(d.get("ess")), int(d["n_reference"]),
                   int(d["n_current"]), as_float(d.get("domain_auc")), None if since is None else int(since),
                   tuple(WindowMetric.from_dict(w) for w in d.get("windows", [])))


def density_ratio(reference: pd.DataFrame, current: pd.DataFrame, *, seed: int = 0, clip: float = 20.0,
                  max_iter: int = 60) -> tuple[np.ndarray, float, DomainClassifierDrift]:
    """Importance weights of the reference rows towards ``current`` (mean 1, clipped at ``clip``
    times the mean), the domain classifier's out-of-fold AUC, and the fitted classifier."""
    det = DomainClassifierDrift(seed=seed, max_iter=max_iter).fit(reference)
    auc = float(det.compare(current).statistic)
    y, p, _ = det.out_of_fold_scores()
    p_ref = np.clip(p[y == 0], 1e-6, 1 - 1e-6)
    w = p_ref / (1 - p_ref) * (len(reference) / len(current))
    w = np.minimum(w / w.mean(), clip)
    return w / w.mean(), auc, det


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), n, replace=False))]


def _metric_args(frame: pd.DataFrame, target: str, prediction: str | None, score: str | None,
                 scores: Sequence[str] | None, metric: str, labels: Sequence[Any] | None) -> dict[str, Any]:
    args: dict[str, Any] = {"y_true": frame[target].to_numpy(), "labels": labels}
    if metric in REGRESSION_METRICS:
        args["y_true"] = frame[target].to_numpy(dtype=float)
        args["y_pred"] = frame[prediction].to_numpy(dtype=float) if prediction else None
        args.pop("labels")
        return args
    if prediction:
        args["y_pred"] = frame[prediction].to_numpy()
    if score:
        args["score"] = frame[score].to_numpy(dtype=float)
    elif scores:
        args["scores"] = frame[list(scores)].to_numpy(dtype=float)
    return args


def _windows(current: pd.DataFrame, window_column: str, metric: str, args_of: Any, sign: float,
             ref_value: float) -> tuple[tuple[WindowMetric, ...], int | None]:
    out = []
    for wid, part in current.groupby(window_column, sort=True):
        if len(part) < 2:
            continue
        args = args_of(part)
        try:
            if metric in REGRESSION_METRICS:
                from detectors.performance import regression_performance
                r = regression_performance(args["y_true"], args["y_pred"], n_boot=100, min_support=1)[metric]
            else:
                r = classification_performance(args["y_true"], args.get("y_pred"), args.get("score"),
                                               args.get("scores"), args.get("labels"), metrics=[metric], n_boot=100,
                                               min_support=1)[metric]
        except ValueError:  # a window with one class has no ROC AUC
            continue
        out.append(WindowMetric(int(wid), r.value, r.lower, r.upper, int(r.n)))
    since = None
    for w in reversed(out):  # the trailing run of windows whose interval is wholly worse
        worse_bound = w.hi if sign > 0 else w.lo
        if np.isfinite(worse_bound) and sign * (ref_value - worse_bound) > 0:
            since = w.window_id
        else:
            break
    return tuple(out), since


def evaluate_drop(reference: pd.DataFrame, current: pd.DataFrame, *, target: str, features: Sequence[str],
                  metric: str, prediction: str | None = None, score: str | None = None,
                  scores: Sequence[str] | None = None, labels: Sequence[Any] | None = None,
                  window_column: str | None = None, n_boot: int = 200, confidence: float = 0.95,
                  max_rows: int = 20_000, seed: int = 0, clip: float = 20.0,
                  context: pd.DataFrame | None = None) -> Evaluation:
    """Evaluate the fall of ``metric`` from ``reference`` to ``current`` (see the module doc).

    Both frames hold the served model's output (``prediction`` and/or ``score`` / ``scores``)
    and the label ``target``; rows without a label in ``current`` are left out. At most
    ``max_rows`` rows of each (seeded sample) enter the density ratio and the bootstrap.
    ``context``: earlier rows (the windows before the incident) that only join the per-window
    series, so it shows the metric before and after the fall.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=4000); y = (x + rng.normal(size=4000) > 0).astype(int)
    >>> ref = pd.DataFrame({"x": x, "y": y, "p": (x > 0).astype(int)})
    >>> cur = ref.sample(2000, random_state=1).assign(y=lambda f: np.where(rng.random(2000) < 0.2, 1 - f.y, f.y))
    >>> e = evaluate_drop(ref, cur, target="y", features=["x"], metric="accuracy", prediction="p", n_boot=50)
    >>> e.drop.above_zero, e.concept_part.above_zero, abs(e.covariate_part.value) < 0.03
    (True, True, True)
    """
    check_int("n_boot", n_boot, 0)
    check_int("max_rows", max_rows, 10)
    if metric not in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS):
        raise ValueError(f"unknown metric {metric!r}")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in (target, prediction, score, *(scores or ()), *features) if c and c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    rng = np.random.default_rng(seed)
    ref = _sample(reference[reference[target].notna()], max_rows, rng)
    cur_all = current[current[target].notna()]
    cur = _sample(cur_all, max_rows, rng)
    if len(ref) < 20 or len(cur) < 20:
        raise ValueError(f"too few labelled rows to evaluate: reference {len(ref)}, current {len(cur)} (need 20)")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def args_of(frame: pd.DataFrame) -> dict[str, Any]:
        return _metric_args(frame, target, prediction, score, scores, metric, labels)

    ref_args, cur_args = args_of(ref), args_of(cur)
    w, auc, _ = density_ratio(ref[list(features)], cur[list(features)], seed=seed, clip=clip)
    ess = float(w.sum() ** 2 / (w**2).sum())
    n_r, n_c = len(ref), len(cur)
    b = max(n_boot, 0)
    counts_r = np.vstack([np.ones(n_r), rng.multinomial(n_r, np.full(n_r, 1 / n_r), size=b)]) if b else np.ones((1, n_r))
    counts_c = np.vstack([np.ones(n_c), rng.multinomial(n_c, np.full(n_c, 1 / n_c), size=b)]) if b else np.ones((1, n_c))
    m_ref = weighted_metric(metric, counts_r, **ref_args)
    m_exp = weighted_metric(metric, counts_r * w, **ref_args)
    m_cur = weighted_metric(metric, counts_c, **cur_args)
    a = (1 - confidence) / 2

    def est(values: np.ndarray) -> Estimate:
        reps = values[1:][np.isfinite(values[1:])]
        if len(reps) == 0:
            return Estimate(float(values[0]))
        return Estimate(float(values[0]), float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a)))

    windows: tuple[WindowMetric, ...] = ()
    since = None
    if window_column is not None and window_column in cur_all.columns:
        series = cur_all
        if context is not None and len(context) and window_column in context.columns:
            series = pd.concat([context[context[target].notna()], cur_all], ignore_index=True)
        windows, since = _windows(series, window_column, metric, args_of, sign, float(m_ref[0]))
    return Evaluation(metric, est(m_ref), est(m_cur), est(sign * (m_ref - m_cur)), est(m_exp),
                      est(sign * (m_ref - m_exp)), est(sign * (m_exp - m_cur)), ess, n_r, n_c, auc, since, windows)
