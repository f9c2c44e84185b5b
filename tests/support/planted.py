"""Planted root causes on the shipped datasets (car loan, employment): one cause at a time.

A served model (scikit-learn gradient boosting, the stand-in for the user's model) is fitted on
one part of a dataset; the reference is a second part with that model's predictions; the current
traffic is a sample of a third part with one planted fault, and the served model predicts on the
*faulty* inputs, as it would in production. Used by the planted-cause tests and by
``bench/rca_planted.py`` (3 seeds x 2 strengths).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from tests.support.data import data_file

__all__ = ["DATASETS", "SCENARIOS", "Scenario", "plant"]


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    covariate: str  # a numeric feature whose distribution is shifted
    scale: str  # a numeric feature hit by a unit bug
    nulls: tuple[str, ...]  # features lost by a broken upstream join
    unseen: tuple[str, str]  # (categorical feature, a value it never had)
    concept: tuple[str, str]  # (column, level) where P(y|x) changes
    noise: tuple[str, str]  # (column, level) whose labels get noisy
    rare: tuple[str, str]  # (column, level) made rare in training/reference, then large
    segments: tuple[str, ...]


DATASETS = {
    "car_loan": Dataset(
        "car_loan", "synthetic_car_loan_reference.csv", "repaid",
        ("car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
         "size_of_downpayment", "driver_tenure"),
        ("salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"),
        covariate="debt_to_income_ratio", scale="car_value", nulls=("car_value", "driver_tenure"),
        unseen=("size_of_downpayment", "50%"), concept=("salary_range", "20K - 40K €"),
        noise=("salary_range", "40K - 60K €"), rare=("salary_range", "60K+ €"),
        segments=("salary_range", "size_of_downpayment")),
    "employment": Dataset(
        "employment", "employment_MA_reference.pq", "employed",
        ("AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY", "DEAR", "DEYE",
         "DREM", "SEX", "RAC1P"),
        ("SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY", "DEAR", "DEYE", "DREM", "SEX",
         "RAC1P"),
        covariate="AGEP", scale="AGEP", nulls=("AGEP", "SCHL"), unseen=("RAC1P", "10"), concept=("MAR", "1"),
        noise=("SEX", "1"), rare=("CIT", "4"), segments=("SEX", "MAR")),
}

# scenario -> (expected cause, what it must name: "feature" or "segment")
SCENARIOS: dict[str, tuple[str, str | None]] = {
    "clean": ("none", None),
    "covariate_shift": ("covariate_shift", "feature"),
    "concept_drift": ("concept_drift", "segment"),
    "label_noise": ("label_noise", "segment"),
    "unseen_category": ("data_quality", "feature"),
    "unit_bug": ("data_quality", "feature"),
    "broken_join": ("data_quality", "feature"),
    "label_shift": ("label_shift", None),
    "underrepresented_segment": ("underrepresented_segment", "segment"),
}


@dataclass
class Scenario:
    name: str
    dataset: Dataset
    reference: pd.DataFrame
    current: pd.DataFrame
    cause: str
    feature: str | tuple[str, ...] | None = None
    segment: tuple[str, str] | None = None
    noisy_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def columns(self) -> dict[str, Any]:
        """The keyword arguments naming the frames' columns."""
        return {"target": self.dataset.target, "prediction": "y_pred", "score": "y_score",
                "features": list(self.dataset.features), "categorical": list(self.dataset.categorical),
                "segments": list(self.dataset.segments), "id_column": "id"}


@lru_cache(maxsize=4)
def _frame(name: str) -> pd.DataFrame:
    ds = DATASETS[name]
    path = data_file(ds.file)
    f = pd.read_parquet(path) if path.suffix == ".pq" else pd.read_csv(path)
    f = f[["id", *ds.features, ds.target]].copy()
    for c in ds.categorical:
        f[c] = f[c].astype(str)
    f[ds.target] = f[ds.target].astype(int)
    return f.reset_index(drop=True)


class _Served:
    """The stand-in for the user's model: gradient boosting on ordinal-encoded categories
    (a value it never saw becomes missing, as many serving stacks do)."""

    def __init__(self, ds: Dataset, train: pd.DataFrame, seed: int) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.ds = ds
        self.levels = {c: sorted(train[c].unique()) for c in ds.categorical}
        x = self._x(train)
        from threadpoolctl import threadpool_limits

        cat_mask = [c in ds.categorical for c in ds.features]
        with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP spin-waits collapse on busy cores
            self.model = HistGradientBoostingClassifier(max_iter=150, categorical_features=cat_mask,
                                                        random_state=seed).fit(x, train[ds.target])

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for c in self.ds.features:
            if c in self.ds.categorical:
                index = {v: i for i, v in enumerate(self.levels[c])}
                cols.append(frame[c].map(lambda v: index.get(v, np.nan)).to_numpy(dtype=float))
            else:
                cols.append(pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float))
        return np.column_stack(cols)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            p = self.model.predict_proba(self._x(frame))[:, 1]
        return frame.assign(y_score=p, y_pred=(p >= 0.5).astype(int))


def _strength(strength: str, base: float, variant: float) -> float:
    if strength not in ("base", "variant"):
        raise ValueError(f"strength must be 'base' or 'variant', got {strength!r}")
    return base if strength == "base" else variant


def plant(scenario: str, dataset: str = "car_loan", seed: int = 0, strength: str = "base",
          n_current: int = 6000, n_reference: int = 15000) -> Scenario:
    """One planted scenario (see :data:`SCENARIOS`); ``strength="variant"`` is the weaker form."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {list(SCENARIOS)}")
    ds = DATASETS[dataset]
    rng = np.random.default_rng(seed)
    full = _frame(dataset)
    order = rng.permutation(len(full))
    third = len(full) // 3
    train, ref, pool = (full.iloc[order[:third]], full.iloc[order[third:2 * third]], full.iloc[order[2 * third:]])
    y = ds.target
    expected, names = SCENARIOS[scenario]
    feature: Any = None
    segment = None
    noisy = np.empty(0, dtype=np.int64)

    if scenario == "underrepresented_segment":
        col, level = ds.rare
        in_seg = lambda f: f[col] == level  # noqa: E731
        # the segment's own relation differs (its labels are the others' flipped), and it is rare
        # where the model learnt and in the reference: the model cannot know it
        train, ref, pool = (f.assign(**{y: np.where(in_seg(f), 1 - f[y], f[y])}) for f in (train, ref, pool))
        keep = lambda f, share: f[~in_seg(f) | (rng.random(len(f)) < share)]  # noqa: E731
        train, ref = keep(train, 0.05), keep(ref, 0.05)
        share = _strength(strength, 0.3, 0.15)
        seg_rows = pool[in_seg(pool)]
        rest = pool[~in_seg(pool)]
        k = int(n_current * share)
        cur = pd.concat([seg_rows.sample(min(k, len(seg_rows)), random_state=seed, replace=k > len(seg_rows)),
                         rest.sample(n_current - k, random_state=seed)])
        segment = ds.rare
    elif scenario == "covariate_shift":
        z = pool[ds.covariate].to_numpy(dtype=float)
        z = (z - z.mean()) / z.std()
        beta = _strength(strength, 1.5, 0.8)
        p = np.exp(beta * z)
        cur = pool.iloc[rng.choice(len(pool), n_current, replace=False, p=p / p.sum())]
        feature = ds.covariate
    elif scenario == "label_shift":
        pos = pool[pool[y] == 1]
        neg = pool[pool[y] == 0]
        rate = float(pool[y].mean()) + _strength(strength, 0.3, 0.18)
        k = int(n_current * rate)
        cur = pd.concat([pos.sample(k, random_state=seed, replace=k > len(pos)),
                         neg.sample(n_current - k, random_state=seed)])
    else:
        cur = pool.sample(n_current, random_state=seed)

    # distinct ids (sampling with replacement repeats rows), apart from the reference's
    cur = cur.reset_index(drop=True).assign(id=10_000_000 + np.arange(len(cur)))
    served = _Served(ds, train, seed)
    ref = served.predict(ref.iloc[:n_reference])
    cur = cur.copy()
    if scenario == "unit_bug":
        hit = rng.random(len(cur)) < _strength(strength, 1.0, 0.3)
        cur[ds.scale] = np.where(hit, cur[ds.scale].astype(float) * 1000.0, cur[ds.scale].astype(float))
        feature = ds.scale
    elif scenario == "broken_join":
        hit = rng.random(len(cur)) < _strength(strength, 0.3, 0.12)
        for c in ds.nulls:
            cur[c] = cur[c].astype(object if c in ds.categorical else float)
            cur.loc[hit, c] = None if c in ds.categorical else np.nan
        feature = ds.nulls
    elif scenario == "unseen_category":
        col, value = ds.unseen
        hit = rng.random(len(cur)) < _strength(strength, 0.25, 0.1)
        cur[col] = np.where(hit, value, cur[col])
        feature = col
    cur = served.predict(cur)
    if scenario == "concept_drift":
        col, level = ds.concept
        seg = (cur[col] == level).to_numpy()
        if strength == "variant":  # only part of the segment, by a rule on another feature
            other = ds.covariate
            seg &= (cur[other] > cur.loc[seg, other].median()).to_numpy()
        cur[y] = np.where(seg, 1 - cur[y], cur[y])
        segment = ds.concept
    elif scenario == "label_noise":
        col, level = ds.noise
        seg = (cur[col] == level).to_numpy()
        flip = seg & (rng.random(len(cur)) < _strength(strength, 0.2, 0.1))
        cur[y] = np.where(flip, 1 - cur[y], cur[y])
        noisy = cur["id"].to_numpy()[flip]
        segment = ds.noise
    cur = cur.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # arrival order
    return Scenario(scenario, ds, ref.reset_index(drop=True), cur, expected, feature, segment, noisy)


def hit(report: Any, sc: Scenario) -> tuple[bool, str]:
    """Whether the analysis ranked the planted cause first and named its feature or segment;
    (hit, what it said). Clean: no cause at all. A segment is named when the top cause's slice
    holds the planted predicate (``col=level``, alone or with another)."""
    causes = report.causes
    said = ", ".join(f"{c.cause}({c.confidence:.2f}; {c.feature or c.segment or '-'})" for c in causes[:3]) or "none"
    if sc.cause == "none":
        return not causes, said
    if not causes or causes[0].cause != sc.cause:
        return False, said
    top = causes[0]
    _, what = SCENARIOS[sc.name]
    if what == "feature":
        wanted = sc.feature if isinstance(sc.feature, tuple) else (sc.feature,)
        return top.feature in wanted, said
    if what == "segment":
        assert sc.segment is not None
        col, level = sc.segment
        return f"{col}={level}" in (top.segment or "").split(" & "), said
    return True, said


def analyse_scenario(sc: Scenario, **kwargs: Any) -> Any:
    """detectors.rca.analyse on a scenario's frames."""
    from detectors.rca import analyse

    c = sc.columns
    return analyse(sc.reference, sc.current, target=c["target"], features=c["features"], prediction="y_pred",
                   score="y_score", categorical=c["categorical"], segments=c["segments"], id_column="id", **kwargs)
