"""Root-cause analysis of one incident: frames in, a typed :class:`RCAReport` out.

The debugging framework, in order (see :mod:`detectors.rca.causes` for how evidence becomes
causes and confidences):

1. *evaluate* (:func:`detectors.rca.evaluate.evaluate_drop`): which metric fell, by how much,
   since which window, and how much of the fall today's inputs explain;
2. *narrow* (:func:`detectors.rca.slices.find_slices`): the single columns and pairs that hold the
   excess error, BH-corrected;
3. *root cause*: data quality checks (:mod:`detectors.rca.quality`), per-feature shift tests, the
   label-shift test with its ``P(x|y)`` check, the concept part of the drop, label-noise suspects
   (:mod:`detectors.rca.noise`) and rare-in-reference slices, ranked;
4. *mitigate*: :func:`detectors.rca.causes.actions_for`.

Without labels (``target`` absent or all null in ``current``) only the data causes
(``data_quality``, ``covariate_shift``) are assessed, and ``notes`` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.rca.causes import Action, Cause, actions_for, ranked, strength
from detectors.rca.evaluate import Evaluation, evaluate_drop
from detectors.rca.quality import QualityFinding, affected_rows, data_quality
from detectors.rca.slices import Slice, SliceReport, find_slices

__all__ = ["FeatureShift", "RCAReport", "analyse"]

TASKS = ("binary_classification", "multiclass_classification", "regression")


@dataclass(frozen=True, slots=True)
class FeatureShift:
    """One feature's two-sample test, current vs reference (KS for numeric, total variation and
    chi-square for categorical levels); ``within_class`` is the same effect after reweighting the
    reference by class (NaN without labels); ``scaled`` (numeric only) the Wasserstein distance in
    reference standard deviations, the effect size the agent's window verdicts use.

    A feature drifted when p < 0.001 and either effect reaches 0.1: KS 0.1 alone would miss a
    location shift of a tenth of a standard deviation (KS ~0.04) that the window verdict flags.

    >>> FeatureShift.from_dict(FeatureShift("x", "ks", 0.3, 1e-9, 0.05).to_dict()).effect
    0.3
    >>> FeatureShift("x", "ks", 0.05, 1e-9, scaled=0.12).drifted
    True
    """

    feature: str
    method: str
    effect: float
    p_value: float
    within_class: float = float("nan")
    scaled: float = float("nan")

    @property
    def drifted(self) -> bool:
        size = max(self.effect, self.scaled if np.isfinite(self.scaled) else 0.0)
        return bool(self.p_value < 1e-3 and size >= 0.1)

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "method": self.method, "effect": float(self.effect),
                "p_value": float(self.p_value),
                "within_class": None if not np.isfinite(self.within_class) else float(self.within_class),
                "scaled": None if not np.isfinite(self.scaled) else float(self.scaled)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureShift:
        w, sc = d.get("within_class"), d.get("scaled")
        return cls(str(d["feature"]), str(d["method"]), float(d["effect"]), float(d["p_value"]),
                   float("nan") if w is None else float(w), float("nan") if sc is None else float(sc))


@dataclass(frozen=True)
class RCAReport:
    """The analysis of one incident (``to_dict`` is the ``rca`` object of ``GET /incidents/{id}``,
    less its ``status``)."""

    evaluate: Evaluation | None
    slices: SliceReport | None
    causes: tuple[Cause, ...]
    actions: tuple[Action, ...]
    quality: tuple[QualityFinding, ...] = ()
    shifts: tuple[FeatureShift, ...] = ()
    label_shift: Mapping[str, Any] = field(default_factory=dict)
    noise: Mapping[str, Any] = field(default_factory=dict)
    distributions: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def top(self) -> Cause | None:
        return self.causes[0] if self.causes else None

    def to_dict(self) -> dict[str, Any]:
        return {"evaluate": None if self.evaluate is None else self.evaluate.to_dict(),
                "slices": [] if self.slices is None else [s.to_dict() | {"label": s.label} for s in self.slices.slices],
                "slice_search": None if self.slices is None else {
                    "n": self.slices.n, "tested": self.slices.tested, "pruned": self.slices.pruned,
                    "test": self.slices.test, "min_support": self.slices.min_support},
                "causes": [c.to_dict() for c in self.causes], "actions": [a.to_dict() for a in self.actions],
                "quality": [q.to_dict() for q in self.quality], "shifts": [s.to_dict() for s in self.shifts],
                "label_shift": dict(self.label_shift), "noise": dict(self.noise),
                "distributions": dict(self.distributions), "notes": list(self.notes),
                "seconds": round(float(self.seconds), 3)}


# ----------------------------------------------------------------------------- evidence


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype))


def _shares(values: pd.Series, levels: Sequence[str], weights: np.ndarray | None = None) -> np.ndarray:
    codes = pd.Categorical(values.astype(str).where(values.notna(), "__null__"), categories=list(levels)).codes
    w = np.ones(len(values)) if weights is None else weights
    counts = np.bincount(codes[codes >= 0], weights=w[codes >= 0], minlength=len(levels))
    return counts / max(w.sum(), 1e-12)


def _weighted_ks(a: np.ndarray, b: np.ndarray, wb: np.ndarray | None = None) -> float:
    """KS statistic between sample ``a`` and (weighted) sample ``b``."""
    a, keep = np.sort(a), np.isfinite(b)
    b, wb = b[keep], (np.ones(keep.sum()) if wb is None else wb[keep])
    order = np.argsort(b, kind="mergesort")
    b, wb = b[order], wb[order]
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    cw = np.concatenate([[0.0], np.cumsum(wb)]) / wb.sum()
    fb = cw[np.searchsorted(b, grid, side="right")]
    return float(np.abs(fa - fb).max())


def _feature_shift(name: str, ref: pd.Series, cur: pd.Series, categorical: bool,
                   class_weights: np.ndarray | None) -> FeatureShift:
    from scipy import stats

    if not categorical and _is_numeric(ref) and _is_numeric(cur):
        r = ref.to_numpy(dtype=float, na_value=np.nan)
        c = cur.to_numpy(dtype=float, na_value=np.nan)
        r_ok, c_ok = r[np.isfinite(r)], c[np.isfinite(c)]
        if len(r_ok) < 2 or len(c_ok) < 2:
            return FeatureShift(name, "ks", 0.0, 1.0)
        res = stats.ks_2samp(c_ok, r_ok)
        within = float("nan")
        if class_weights is not None:
            within = _weighted_ks(c_ok, r, class_weights)
        sd = float(r_ok.std())
        scaled = float(stats.wasserstein_distance(c_ok, r_ok)) / sd if sd > 0 else float("nan")
        return FeatureShift(name, "ks", float(res.statistic), float(res.pvalue), within, scaled)
    levels = sorted(set(ref.astype(str).where(ref.notna(), "__null__")) | set(cur.astype(str).where(cur.notna(),
                                                                                                    "__null__")))
    p_r, p_c = _shares(ref, levels), _shares(cur, levels)
    tv = 0.5 * float(np.abs(p_r - p_c).sum())
    table = np.stack([p_r * len(ref), p_c * len(cur)])
    table = table[:, table.sum(axis=0) > 0]
    p = 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table, correction=False).pvalue)
    within = float("nan")
    if class_weights is not None:
        within = 0.5 * float(np.abs(_shares(ref, levels, class_weights) - p_c).sum())
    return FeatureShift(name, "total_variation", tv, p, within)


def _label_shift_effect(ref: pd.Series, categorical: bool, class_weights: np.ndarray) -> float:
    """How far reweighting the reference by class moves one feature (the input drift that label
    shift alone would cause): KS or total variation between the reference and itself reweighted."""
    if not categorical and _is_numeric(ref):
        r = ref.to_numpy(dtype=float, na_value=np.nan)
        return _weighted_ks(r[np.isfinite(r)], r, class_weights)
    levels = sorted(set(ref.astype(str).where(ref.notna(), "__null__")))
    return 0.5 * float(np.abs(_shares(ref, levels) - _shares(ref, levels, class_weights)).sum())


def _class_weights(ref_y: pd.Series, cur_y: pd.Series) -> tuple[np.ndarray, dict[str, Any]]:
    from detectors.conditional import label_shift_test

    r, c = ref_y.to_numpy(), cur_y.to_numpy()
    res = label_shift_test(r, c)
    classes = np.unique(np.concatenate([r, c]))
    p_r = np.array([(r == k).mean() for k in classes])
    p_c = np.array([(c == k).mean() for k in classes])
    ratio = np.divide(p_c, p_r, out=np.zeros_like(p_c), where=p_r > 0)
    w = ratio[np.searchsorted(classes, r)]
    info = {"effect": float(res.effect_size), "p_value": float(res.p_value), "drifted": bool(res.drifted),
            "reference": {str(k): float(v) for k, v in zip(classes, p_r)},
            "current": {str(k): float(v) for k, v in zip(classes, p_c)}}
    return w / max(w.mean(), 1e-12), info


def _errors(frame: pd.DataFrame, target: str, prediction: str | None, task: str) -> np.ndarray:
    if task == "regression":
        return np.abs(frame[target].to_numpy(dtype=float) - frame[prediction].to_numpy(dtype=float))
    return (frame[target].astype(str).to_numpy() != frame[prediction].astype(str).to_numpy()).astype(float)


def _numeric_classes(frames: Sequence[pd.DataFrame], columns: Sequence[str]) -> list[pd.DataFrame]:
    """Class columns as float64 when every value is a number (1, 1.0 and True name one class),
    else as text: the reference and today's rows may spell a class differently."""
    def numbers(s: pd.Series) -> pd.Series | None:
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            return s.astype(float)
        x = pd.to_numeric(s.map(lambda v: float(v) if isinstance(v, (bool, int, float, np.number)) else v),
                          errors="coerce")
        return x if (x.notna() == s.notna()).all() else None

    cols = [c for c in dict.fromkeys(columns) if c and all(c in f.columns for f in frames)]
    out = [f.copy() for f in frames]
    for c in cols:
        conv = [numbers(f[c]) for f in out]
        for f, x in zip(out, conv):
            f[c] = x if all(v is not None for v in conv) else f[c].where(f[c].isna(), f[c].astype(str))
    return out


def _distributions(report: SliceReport | None, reference: pd.DataFrame, current: pd.DataFrame,
                   features: Sequence[str], categorical: set[str]) -> dict[str, Any]:
    from detectors.rca._encode import fit_column

    out: dict[str, Any] = {}
    bins = {} if report is None else {b.column: b for b in report.bins}
    for f in dict.fromkeys(features):
        b = bins.get(f)
        if b is None:  # not sliced (no labels): the same levels find_slices would cut
            b = fit_column(f, reference[f], current[f], numeric=f not in categorical and _is_numeric(reference[f]),
                           n_bins=10, ref_support=30, win_support=30, max_levels=50)[0]
        if b is not None:
            k = len(b.levels)
            r = np.bincount(b.codes(reference[f]).astype(np.intp), minlength=k) / max(len(reference), 1)
            c = np.bincount(b.codes(current[f]).astype(np.intp), minlength=k) / max(len(current), 1)
            levels = list(b.levels)
        else:
            levels = sorted(set(reference[f].astype(str)) | set(current[f].astype(str)))[:50]
            r, c = _shares(reference[f], levels), _shares(current[f], levels)
        out[f] = {"kind": "numeric" if (b is not None and b.kind == "numeric") else "categorical", "levels": levels,
                  "reference": [round(float(v), 5) for v in r], "current": [round(float(v), 5) for v in c]}
    return out


NoiseFinder = Callable[..., Any]


def _default_noise() -> NoiseFinder | None:
    try:
        from detectors.rca.noise import find_label_noise
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    return find_label_noise


# ----------------------------------------------------------------------------- the analysis


def analyse(reference: pd.DataFrame, current: pd.DataFrame, *, target: str, features: Sequence[str],
            prediction: str | None = None, score: str | None = None, scores: Sequence[str] | None = None,
            task: str = "binary_classification", metric: str | None = None, categorical: Sequence[str] = (),
            segments: Sequence[str] = (), id_column: str | None = None, window_column: str | None = None,
            labels: Sequence[Any] | None = None, seed: int = 0, n_boot: int = 200, max_rows: int = 20_000,
            min_confidence: float = 0.5, rare_share: float = 0.03, noise: NoiseFinder | None | bool = True,
            extra_quality: Sequence[QualityFinding] = (), context: pd.DataFrame | None = None) -> RCAReport:
    """Run the four steps on ``current`` against ``reference`` (module doc). ``noise=False`` skips
    the label-noise model; ``extra_quality`` adds findings the caller saw itself (the agent's
    schema counters); ``context`` earlier rows (the windows before the incident) that only join the
    per-window metric series. Raises ValueError on unusable input (missing columns, empty frames).

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)})
    >>> ref["y"] = (ref.x + rng.normal(0, 0.5, 3000) > 0).astype(int); ref["p"] = (ref.x > 0).astype(int)
    >>> cur = ref.iloc[:1500].assign(x=lambda f: f.x * 1000)  # a unit bug upstream
    >>> cur["p"] = (cur.x > 0).astype(int)
    >>> r = analyse(ref, cur, target="y", features=["x", "c"], prediction="p", n_boot=20, noise=False)
    >>> (r.causes[0].cause, r.causes[0].feature, r.actions[0].action)
    ('data_quality', 'x', 'fix_pipeline')

    The tree models run on one OpenMP thread: beside a busy ingest thread (or other processes),
    OpenMP's spin-waiting threads collapse (measured on 2 busy cores: 129 s with the default
    pool, 2.4 s with one thread, for the same analysis)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _analyse(reference, current, target=target, features=features, prediction=prediction, score=score,
                        scores=scores, task=task, metric=metric, categorical=categorical, segments=segments,
                        id_column=id_column, window_column=window_column, labels=labels, seed=seed, n_boot=n_boot,
                        max_rows=max_rows, min_confidence=min_confidence, rare_share=rare_share, noise=noise,
                        extra_quality=extra_quality, context=context)


def _analyse(reference: pd.DataFrame, current: pd.DataFrame, *, target: str, features: Sequence[str],
             prediction: str | None, score: str | None, scores: Sequence[str] | None, task: str,
             metric: str | None, categorical: Sequence[str], segments: Sequence[str], id_column: str | None,
             window_column: str | None, labels: Sequence[Any] | None, seed: int, n_boot: int, max_rows: int,
             min_confidence: float, rare_share: float, noise: NoiseFinder | None | bool,
             extra_quality: Sequence[QualityFinding], context: pd.DataFrame | None) -> RCAReport:
    t0 = time.perf_counter()
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if len(reference) == 0 or len(current) == 0:
        raise ValueError(f"reference and current need rows (got {len(reference)} and {len(current)})")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in (*features, *segments) if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    if prediction is None and task != "regression" and score is None:
        raise ValueError("give prediction (and score for binary classifiers)")
    features = list(dict.fromkeys(features))
    if task != "regression":
        reference, current = _numeric_classes([reference, current], [target, prediction or ""])
    cat = set(categorical) | {f for f in features if not _is_numeric(reference[f])}
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    if len(reference) > max_rows * 5:
        reference = reference.iloc[np.sort(rng.choice(len(reference), max_rows * 5, replace=False))]
    if target in reference.columns and reference[target].notna().any():
        reference = reference[reference[target].notna()]
    labelled = (current[target].notna().to_numpy() if target in current.columns else np.zeros(len(current), bool))
    has_labels = bool(labelled.sum() >= 30 and target in reference.columns and prediction is not None)
    if not has_labels:
        notes.append(f"labels: {int(labelled.sum())} labelled rows; label causes (concept_drift, label_shift, "
                     "label_noise, underrepresented_segment) not assessed")

    quality = [*extra_quality, *data_quality(reference, current, features, categorical=sorted(cat))]
    faulty = {q.feature for q in quality}
    cur_l = current[labelled] if has_labels else current.iloc[:0]
    class_w, shift_info = (None, {})
    if has_labels and task != "regression":
        class_w, shift_info = _class_weights(reference[target], cur_l[target])
    shifts = [_feature_shift(f, reference[f], (cur_l if class_w is not None else current)[f], f in cat, class_w)
              for f in features]

    evaluation: Evaluation | None = None
    slices: SliceReport | None = None
    cur_errors = None
    if has_labels:
        metric = metric or ("roc_auc" if score and task == "binary_classification" else
                            "mae" if task == "regression" else "accuracy")
        def run(frame: pd.DataFrame) -> Evaluation | None:
            try:
                return evaluate_drop(reference, frame, target=target, features=features, metric=metric,
                                     prediction=prediction, score=score, scores=scores, labels=labels,
                                     window_column=window_column, n_boot=n_boot, max_rows=max_rows, seed=seed,
                                     context=ctx)
            except ValueError as e:
                notes.append(f"evaluate: {e}")
                return None

        ctx = None
        if context is not None and task != "regression" and target in context.columns and prediction in context.columns:
            ctx = _numeric_classes([context], [target, prediction or ""])[0]
        evaluation = intact = run(cur_l)
        hit = affected_rows(quality, reference, cur_l)
        if hit.any():  # a broken input is not a change of P(y|x): judge the concept on intact rows
            intact = run(cur_l[~hit]) if (~hit).sum() >= 200 else None
            if intact is None:
                notes.append(f"concept: {int((~hit).sum())} labelled rows untouched by the pipeline faults; "
                             "P(y|x) not assessed")
        cur_errors = _errors(cur_l, target, prediction, task)
        ref_ok = reference[reference[target].notna()]
        columns = list(dict.fromkeys([*segments, *features]))
        slices = find_slices(cur_l, cur_errors, ref_ok, columns,
                             reference_errors=_errors(ref_ok, target, prediction, task),
                             categorical=[c for c in columns if c in cat], top_k=20)

    causes: list[Cause] = []
    for q in quality:
        what = {"null_spike": f"null rate {q.detail.get('null_rate_reference', 0):.1%} -> "
                              f"{q.detail.get('null_rate_current', 0):.1%}",
                "scale_change": f"values scaled x{q.detail.get('factor', 0):g} in {q.effect:.0%} of rows",
                "unseen_categories": f"unseen values {q.detail.get('values', [])} in {q.effect:.0%} of rows",
                "constant": f"stuck at {q.detail.get('value')!r} in {q.detail.get('share_current', 0):.0%} of rows",
                "type_change": f"{q.detail.get('got')} where {q.detail.get('expected')} expected in "
                               f"{q.effect:.0%} of rows"}.get(q.check, q.check)
        causes.append(Cause("data_quality", strength(q.effect, 0.02), f"{q.feature}: {what}",
                            {"check": q.check, "effect": q.effect, "detail": dict(q.detail)}, feature=q.feature))
    causes = [c for i, c in enumerate(causes) if c.feature not in {d.feature for d in causes[:i]}]  # one per feature

    drifted = sorted((s for s in shifts if s.drifted and s.feature not in faulty), key=lambda s: -s.effect)
    explained = 0.0
    if shift_info.get("drifted") and class_w is not None:
        # label shift keeps P(x|y): the reference reweighted by class must look like today's
        # inputs, both where the inputs moved and where they stayed (then the balance moved alone:
        # P(y|x) did, which is concept drift, not label shift)
        clean = [s for s in shifts if s.feature not in faulty and np.isfinite(s.within_class)]
        predicted = [_label_shift_effect(reference[s.feature], s.feature in cat, class_w) for s in clean]
        scale = max([s.effect for s in clean] + predicted + [1e-9])
        residual = max([s.within_class for s in clean] + [0.0])
        explained = float(np.clip(1 - residual / scale, 0, 1)) if scale > 0.05 else 0.0
    if shift_info.get("drifted"):
        conf = strength(shift_info["effect"], 0.05) * explained
        causes.append(Cause("label_shift", conf,
                            f"class balance moved (total variation {shift_info['effect']:.2f}); reweighting the "
                            f"reference by class explains {explained:.0%} of the input drift",
                            {**shift_info, "explained_input_drift": explained}))
    cov_conf = 0.0
    if drifted:
        top = drifted[0]
        # label shift moves the inputs too: what class reweighting explains is not a covariate
        # shift, but a partial explanation (inputs also shift inside each class) barely discounts it
        # a shift the window verdict would flag is named at least "as likely as not"; its KS size
        # ranks it above that
        cov_conf = max(strength(top.effect, 0.08), 0.5) * (1 - explained**2 if shift_info.get("drifted") else 1.0)
        names = [s.feature for s in drifted[:5]]
        causes.append(Cause("covariate_shift", cov_conf,
                            f"inputs moved: {', '.join(f'{s.feature} ({s.method} {s.effect:.2f})' for s in drifted[:5])}",
                            {"features": {s.feature: s.effect for s in drifted}, "top": names,
                             "domain_auc": None if evaluation is None else evaluation.to_dict()["domain_auc"]},
                            feature=top.feature))

    noise_info: dict[str, Any] = {}
    exclude: list[Any] = []
    if not has_labels:
        intact = None
    if has_labels and evaluation is not None and slices is not None and task != "regression":
        n_ref = max(1, int(reference[target].notna().sum()))
        worse = [s for s in slices.significant if np.isfinite(s.reference_error)]
        # a level that became frequent may hold fewer excess errors than the window's big, always
        # weaker slices, so it can miss the top by score: the levels rare in the reference and
        # frequent now are tested on their own too
        shifted = _rare_levels(slices, cur_l, reference, cur_errors, _errors(reference, target, prediction, task),
                               rare_share, skip=faulty)
        rare = [s for s in [*worse, *shifted] if s.reference_support / n_ref < rare_share
                and s.support / slices.n >= max(0.05, 5 * s.reference_support / n_ref)
                and s.error >= s.rest_error + 0.05
                and (s.reference_support < 100 or s.reference_error >= slices.reference_error + 0.05)]
        if rare:
            s = max(rare, key=lambda r: r.support * (r.error - r.rest_error))
            share = s.explained if np.isfinite(s.explained) else 0.3
            conf = min(0.95, max(cov_conf, 0.5) + 0.1 + 0.25 * float(np.clip(share, 0, 1)))
            causes.append(Cause("underrepresented_segment", conf,
                                f"{s.label} is {s.support / slices.n:.0%} of today's rows but "
                                f"{s.reference_support / n_ref:.1%} of the reference, and its error is "
                                f"{s.error:.0%} (rest {s.rest_error:.0%})",
                                {"slice": s.label, "share_current": s.support / slices.n,
                                 "share_reference": s.reference_support / n_ref, "error": s.error,
                                 "reference_error": s.reference_error, "explained": share},
                                segment=s.label))
            causes = [c if c.cause != "covariate_shift" else
                      Cause(c.cause, c.confidence * 0.7, c.summary, c.evidence, c.feature, c.segment) for c in causes]
        concept = intact.concept_part if intact is not None else None
        if intact is not None and concept is not None and concept.above_zero and intact.drop.above_zero:
            share = intact.concept_share
            where = slices
            residual = _residual_slices(reference, cur_l, target, prediction, score, task, columns, cat)
            if residual is not None:  # realized minus expected error under the reference's P(y|x)
                where = residual
                candidates = [s for s in residual.significant if np.isfinite(s.reference_error)]
            else:
                candidates = worse
            moved = [s for s in candidates if s.error - s.reference_error >= 0.05
                     and s.label not in {r.label for r in rare} and not faulty & {c for c, _ in s.predicates}]
            seg = _localise(moved)
            # the share of the drop left for P(y|x), times how large that part is (a metric
            # point of 0.02 counts one half)
            # (or, once placed, how far the slice's error rose above its expectation: a change in a
            # fifth of the rows moves the whole window's metric little)
            size = strength(concept.value, 0.02)
            if seg is not None:
                size = max(size, strength(seg.error - seg.reference_error, 0.02))
            conf = (float(share) if np.isfinite(share) else 0.0) * size
            noise_share = 0.0
            finder = _default_noise() if noise is True else (noise or None)
            if seg is not None and finder is not None:
                today = cur_l
                if window_column is not None and evaluation.since_window is not None:  # since the metric fell
                    recent = cur_l[cur_l[window_column] >= evaluation.since_window]
                    today = recent if len(recent) >= 200 else cur_l
                noise_info, noise_share, exclude = _noise_in_slice(finder, reference, today, where, seg, target,
                                                                   features, id_column, seed)
            ev = {"concept_part": concept.to_dict(), "drop": intact.drop.to_dict(), "share": share,
                  "rows": intact.n_current}
            if seg is not None:
                ev |= {"slice": seg.label, "slice_error": seg.error, "slice_reference_error": seg.reference_error,
                       "slice_support": seg.support}
            where = f" in {seg.label}" if seg is not None else ""
            if noise_share > 0:
                causes.append(Cause("label_noise", conf * noise_share,
                                    f"{noise_info.get('suspects_in_slice', 0)} labels{where} disagree with confident "
                                    f"out-of-fold predictions and today's rows do not explain them",
                                    ev | {"noise": noise_info}, segment=None if seg is None else seg.label))
            causes.append(Cause("concept_drift", conf * (1 - noise_share),
                                f"inputs explain {intact.covariate_part.value:.3f} of the {intact.metric} "
                                f"drop of {intact.drop.value:.3f}; {concept.value:.3f} is left for P(y|x){where}",
                                ev, segment=None if seg is None else seg.label))
    final = ranked(causes, min_confidence)
    implicated = [c.feature for c in final if c.feature] + [p[0] for c in final if c.segment and slices is not None
                                                             for s in slices.slices if s.label == c.segment
                                                             for p in s.predicates]
    return RCAReport(evaluation, slices, tuple(final), tuple(actions_for(final, exclude_ids=exclude)), tuple(quality),
                     tuple(shifts), shift_info, noise_info,
                     _distributions(slices, reference, current, implicated[:6], cat), tuple(notes),
                     time.perf_counter() - t0)


def _rare_levels(slices: SliceReport, current: pd.DataFrame, reference: pd.DataFrame, errors: np.ndarray,
                 reference_errors: np.ndarray, rare_share: float, skip: set[str]) -> list[Slice]:
    """Single-column levels under ``rare_share`` of the reference and 5x as frequent now (at least
    5% of rows), each with the one-sided binomial test of its errors against the rest's rate,
    Bonferroni-corrected over these candidates (``significant`` at 0.05). Nulls, the pooled rest
    and the features a pipeline fault hit are left to ``data_quality``."""
    from scipy import stats

    n, n_ref = len(current), len(reference)
    found: list[tuple[str, str, int, int, int, float, float]] = []
    for b in slices.bins:
        if b.column in skip:
            continue
        k = len(b.levels)
        cur_codes = b.codes(current[b.column]).astype(np.intp)
        ref_codes = b.codes(reference[b.column]).astype(np.intp)
        sup = np.bincount(cur_codes, minlength=k)
        ref_sup = np.bincount(ref_codes, minlength=k)
        err = np.bincount(cur_codes, weights=errors, minlength=k)
        ref_err = np.bincount(ref_codes, weights=reference_errors, minlength=k)
        for j in np.flatnonzero((ref_sup / max(n_ref, 1) < rare_share) & (sup >= np.maximum(0.05 * n, 5 * ref_sup * n / max(n_ref, 1)))):
            if sup[j] >= n or b.levels[j] in ("__null__", "__other__"):
                continue
            found.append((b.column, b.levels[j], int(sup[j]), int(err[j]), int(ref_sup[j]),
                          float(ref_err[j] / ref_sup[j]) if ref_sup[j] else float("nan"),
                          float((errors.sum() - err[j]) / (n - sup[j]))))
    out = []
    for col, level, sup_j, err_j, ref_j, ref_rate, rest in found:
        p = float(stats.binomtest(err_j, sup_j, min(max(rest, 1e-12), 1 - 1e-12), alternative="greater").pvalue)
        p_adj = min(1.0, p * len(found))
        rate = err_j / sup_j
        ci = stats.binomtest(err_j, sup_j).proportion_ci()
        out.append(Slice(((col, level),), sup_j, rate, rest, rate - rest, sup_j * (rate - rest), float("nan"), p, p_adj,
                         p_adj <= 0.05, (float(ci.low), float(ci.high)), ref_j,
                         ref_rate if np.isfinite(ref_rate) else 1.0))  # no reference rows: nothing to trust there
    return [s for s in out if s.significant]


def _residual_slices(reference: pd.DataFrame, current: pd.DataFrame, target: str, prediction: str | None,
                     score: str | None, task: str, columns: Sequence[str], cat: set[str]) -> SliceReport | None:
    """Slices of ``e - q``: each row's error minus its probability of error under the reference's
    P(y|x) (CBPE's calibrated score, binary classifiers with a score), Welch-tested. Where P(y|x)
    moved the residual is positive; where the model is merely weak (and was so in the reference)
    it is not, so this finds the concept's place where slices of the raw error find the weak ones."""
    if task != "binary_classification" or score is None or prediction is None:
        return None
    from detectors.cbpe import CBPE

    ref = reference[reference[target].notna()]
    classes = np.unique(ref[target].to_numpy())
    if len(classes) != 2:
        return None
    cbpe = CBPE("binary").fit(ref[score].to_numpy(dtype=float), (ref[target].to_numpy() == classes[-1]).astype(int))
    r = _errors(ref, target, prediction, task) - cbpe.expected_errors(ref[score].to_numpy(dtype=float))
    c = _errors(current, target, prediction, task) - cbpe.expected_errors(current[score].to_numpy(dtype=float))
    return find_slices(current, c, ref, list(columns), reference_errors=r, test="welch",
                       categorical=[x for x in columns if x in cat], top_k=20)


def _localise(moved: Sequence[Slice]) -> Slice | None:
    """Where P(y|x) moved: the slice with the largest ``support * rate^2``, ``rate`` its error
    above its own reference error (the excess squared over the support, as a slice's share of a
    chi-square statistic): a big slice that merely contains the moved one has more excess rows but
    a diluted rate; a sub-slice of it keeps the rate with fewer rows."""
    if not moved:
        return None
    return max(moved, key=lambda s: (s.support * (s.error - s.reference_error) ** 2, -len(s.predicates)))


def _noise_in_slice(finder: NoiseFinder, reference: pd.DataFrame, current: pd.DataFrame, slices: SliceReport,
                    seg: Slice, target: str, features: Sequence[str], id_column: str | None,
                    seed: int, max_rows: int = 50_000) -> tuple[dict[str, Any], float, list[Any]]:
    """Label-noise suspects inside ``seg``: (evidence, share of the slice's flagged labels that
    are noise rather than a consistent change, suspect ids). Past ``2 * max_rows`` rows, the
    models see up to ``max_rows`` of the slice and as many others (so at most that many ids are
    listed)."""
    mask = slices.mask(current, seg)
    if len(current) > 2 * max_rows:  # bounded: the slice's rows (up to max_rows) and as many others
        rng = np.random.default_rng(seed)
        inside, outside = np.flatnonzero(mask), np.flatnonzero(~mask)
        keep = np.sort(np.concatenate([rng.choice(inside, min(len(inside), max_rows), replace=False),
                                       rng.choice(outside, min(len(outside), max_rows), replace=False)]))
        current, mask = current.iloc[keep].reset_index(drop=True), mask[keep]
    rep = finder(reference, current, target=target, features=list(features), id_column=id_column, seed=seed)
    if id_column is None:
        keys: list[Any] = list(range(len(current)))
    elif pd.api.types.is_integer_dtype(current[id_column].dtype):
        keys = [int(v) for v in current[id_column].to_numpy()]
    else:
        keys = [str(v) for v in current[id_column].to_numpy(dtype=object)]
    in_slice = {k for k, m in zip(keys, mask.tolist()) if m}
    suspects = [i for i in rep.suspects if i in in_slice]
    explained = [i for i in rep.explained_by_today if i in in_slice]
    excess = max(1.0, seg.support * (seg.error - seg.reference_error))
    flagged = len(suspects) + len(explained)
    share = 0.0
    if flagged and len(suspects) > len(explained) and len(suspects) >= 0.3 * excess:
        share = len(suspects) / flagged
    info = {"suspects_in_slice": len(suspects), "explained_by_today_in_slice": len(explained),
            "slice_excess_errors": excess, "suspects_total": len(rep.suspects), "method": getattr(rep, "method", "")}
    return info, share, suspects if share > 0 else []
