"""The dataset snapshot a retraining job trains on: today's traffic for one model and one incident.

:func:`build_dataset` takes the reference rows and the recent labelled rows (from
:class:`agent.retrain.traffic.TrafficStore`) and writes ``train.parquet``, ``holdout.parquet`` and
``manifest.json`` (written last: its presence marks a complete snapshot). In order:

1. Rows without a label are dropped; columns whose dtype differs between the two frames are
   harmonised (numeric features to float64, categorical ones to text), so train and holdout share
   dtypes.
2. Holdout: the newest ``holdout_share`` of the recent rows by ``time_column`` (stable sort). It
   keeps every column, the served ``prediction``/``score`` included: the champion is scored by
   what it served. It is never filtered or reweighted: it stands for today's traffic as it came.
3. Label-noise suspects (``exclude_ids``, the RCA's ids) are removed from the train rows (recent,
   and reference when ``reference_ids``); the manifest lists them (up to ``max_listed_ids``) and
   counts those left in the holdout. A filter chosen by a model must not also pick the rows the
   challenger is judged on.
4. Importance weights: the reference rows are weighted towards the recent train rows by a domain
   classifier's density ratio (:func:`detectors.rca.evaluate.density_ratio`,
   ``w = P(cur|x)/P(ref|x) * n_ref/n_cur``, mean 1), clipped at ``clip`` times the mean and
   renormalised to mean 1 (as the RCA does; the cap then sits slightly above ``clip``);
   ``ESS = (sum w)^2 / sum w^2`` over the reference rows. When ``ESS < min_ess_share * n_ref``,
   or the domain AUC reaches ``max_domain_auc`` (domains nearly separable: the weights are then
   the classifier's extrapolation, and clipping can leave the ESS looking healthy), the reference
   is dropped and the train rows are the recent ones alone (``fallback`` and its reason in the
   manifest).
   Recent rows weigh 1, reference rows ``reference_weight * w`` (column ``__weight__``; the
   ``__source__`` column says ``reference`` or ``recent``).
   Reference rows in a ``stale_segments`` segment (where the analysis found concept drift: there
   the reference's labels follow the relation that no longer holds) are dropped, never weighted.
5. Stratification: each RCA-named segment (``"col=value"``, ``"a=x & b=[10, 20)"``: see
   :func:`segment_mask`) with fewer than ``min_support`` train rows is topped up with reference
   rows of that segment not yet in train (seeded sample, weight ``reference_weight``; with
   weights on, every reference row is in train already, so only a fallback tops up); a segment
   that still falls short, or cannot be parsed, is reported uncovered.
6. Leakage check: an id, or an identical feature+label row, in both train and holdout raises
   :class:`LeakageError` before anything is written.

Deterministic given ``seed`` (same inputs, same bytes). The weights assume P(y|x) is the same in
both domains (covariate shift); under concept drift the recent rows carry the new relation.

Cost: the domain classifier (gradient-boosted trees, 5 folds) dominates. Its OpenMP threads on a
CPU that other processes keep busy were measured here 20-fold slower than one thread (9 s
against 0.5 s for 1,200 + 720 rows); run the build under ``threadpoolctl.threadpool_limits(1)``
(or ``OMP_NUM_THREADS=1``) where the CPU is shared.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from agent.retrain.segments import Predicate, SegmentError, parse_segment, segment_mask
from agent.retrain.segments import _mask as _mask
from agent.retrain.traffic import to_arrow

if TYPE_CHECKING:
    from agent.retrain.tabular import TabularSchema

__all__ = ["DatasetSpec", "DatasetManifest", "DatasetSnapshot", "RowCounts", "WeightSummary", "SegmentCoverage",
           "FileDigest", "DatasetError", "LeakageError", "SegmentError", "Predicate", "parse_segment",
           "segment_mask", "build_dataset", "load_dataset", "WEIGHT", "SOURCE"]

Task = Literal["binary", "multiclass", "regression"]

WEIGHT = "__weight__"
SOURCE = "__source__"
FORMAT = 1
_PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "torch", "driftwarden")


class DatasetError(ValueError):
    """The inputs cannot give a dataset (missing columns, too few rows, ...): the job stops."""


class LeakageError(DatasetError):
    """Train and holdout share ids or identical feature+label rows."""

    def __init__(self, message: str, ids: tuple[str, ...], rows: int) -> None:
        super().__init__(message)
        self.ids = ids     # holdout ids also in train (up to 20)
        self.rows = rows   # holdout rows identical (features + label) to a train row


def _check_real(name: str, v: Any, lo: float, hi: float, *, lo_closed: bool = False, hi_closed: bool = True) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
    if not (ok and (lo <= v if lo_closed else lo < v) and (v <= hi if hi_closed else v < hi)):
        span = f"{'[' if lo_closed else '('}{lo}, {hi}{']' if hi_closed else ')'}"
        raise ValueError(f"{name} must be in {span}, got {v!r}")


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Which columns are what, and how the snapshot is built (see the module docstring).

    ``categorical`` None: non-numeric and boolean features. ``reference_ids``: the reference's ids
    name the same entities as the traffic's (checked for leakage, suspects removed there too).
    """

    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...] | None = None
    task: Task = "binary"
    id_column: str | None = "id"
    time_column: str = "timestamp"
    prediction_column: str | None = None
    score_column: str | None = None
    window_column: str | None = "__window__"
    segments: tuple[str, ...] = ()
    stale_segments: tuple[str, ...] = ()  # the analysis' concept-drift segments: reference rows there are dropped
    exclude_ids: tuple[int | str, ...] = ()
    min_support: int = 50
    holdout_share: float = 0.2
    seed: int = 0
    clip: float = 20.0
    min_ess_share: float = 0.1
    max_domain_auc: float = 0.99
    reference_weight: float = 1.0
    weighting: bool = True
    domain_max_iter: int = 60
    reference_ids: bool = True
    check_duplicates: bool = True
    max_listed_ids: int = 1000

    def __post_init__(self) -> None:
        lists = ("features", "segments", "stale_segments", "exclude_ids") + (("categorical",) if self.categorical is not None else ())
        for name in lists:
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"task must be binary, multiclass or regression, got {self.task!r}")
        if not self.features or len(set(self.features)) != len(self.features):
            raise ValueError(f"features must be non-empty and distinct, got {self.features!r}")
        if self.categorical is not None and (extra := sorted(set(self.categorical) - set(self.features))):
            raise ValueError(f"categorical columns {extra!r} are not in features")
        others = [c for c in (self.target, self.id_column, self.time_column, self.prediction_column,
                              self.score_column, self.window_column, WEIGHT, SOURCE) if c is not None]
        if clash := sorted(set(others) & set(self.features)):
            raise ValueError(f"columns {clash!r} are features and also target/id/time/prediction/score/window")
        for name in ("min_support", "seed", "domain_max_iter", "max_listed_ids"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "domain_max_iter" else 0):
                raise ValueError(f"{name} must be an int >= {1 if name == 'domain_max_iter' else 0}, got {v!r}")
        _check_real("holdout_share", self.holdout_share, 0.0, 1.0, hi_closed=False)
        _check_real("clip", self.clip, 1.0, math.inf, lo_closed=True, hi_closed=False)
        _check_real("min_ess_share", self.min_ess_share, 0.0, 1.0, lo_closed=True)
        _check_real("max_domain_auc", self.max_domain_auc, 0.5, 1.0)
        _check_real("reference_weight", self.reference_weight, 0.0, math.inf, hi_closed=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, slots=True)
class RowCounts:
    reference_input: int
    recent_input: int
    unlabelled_reference: int   # dropped: no label
    unlabelled_recent: int
    excluded_reference: int     # dropped from train: label-noise suspects
    excluded_recent: int
    train_reference: int        # reference rows in train (0 on fallback), top-ups not included
    train_recent: int
    train_added: int            # reference rows added to cover segments
    holdout: int

    @property
    def train(self) -> int:
        return self.train_reference + self.train_recent + self.train_added


@dataclass(frozen=True, slots=True)
class WeightSummary:
    """The reference rows' density-ratio weights (mean 1, after clipping)."""

    n: int
    min: float
    median: float
    max: float
    clipped: int
    clip: float
    ess: float
    ess_share: float
    domain_auc: float


@dataclass(frozen=True, slots=True)
class SegmentCoverage:
    segment: str
    input_rows: int   # matching rows in reference + recent (labelled)
    before: int       # in train before stratification
    after: int        # in train after it
    added: int        # reference rows added for this segment
    holdout: int
    weight: float     # sum of __weight__ over its train rows
    covered: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FileDigest:
    name: str
    sha256: str
    bytes: int
    rows: int


@dataclass(frozen=True, slots=True)
class DatasetManifest:
    """What ``manifest.json`` holds; :meth:`schema` gives the trainer's :class:`TabularSchema`."""

    spec: DatasetSpec
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    rows: RowCounts
    weights: WeightSummary | None
    fallback: bool
    fallback_reason: str | None
    segments: tuple[SegmentCoverage, ...]
    excluded_count: int              # train rows removed as label-noise suspects
    excluded_ids: tuple[str, ...]    # their ids, in the RCA's order, at most spec.max_listed_ids
    excluded_ids_truncated: bool
    excluded_in_holdout: int         # suspects left in the holdout
    excluded_not_found: int          # suspect ids matching no row
    source_windows: tuple[int, ...]
    holdout_windows: tuple[int, ...]
    holdout_span: tuple[str, str]
    files: tuple[FileDigest, ...]
    versions: Mapping[str, str | None]
    format: int = FORMAT

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def uncovered(self) -> tuple[str, ...]:
        return tuple(s.segment for s in self.segments if not s.covered)

    def file(self, name: str) -> FileDigest:
        return next(f for f in self.files if f.name == name)

    def schema(self) -> TabularSchema:
        from agent.retrain.tabular import TabularSchema

        s = self.spec
        served = s.score_column if s.task == "binary" else s.prediction_column
        return TabularSchema(task=s.task, target=s.target, numeric=self.numeric, categorical=self.categorical,
                             id_column=s.id_column, time_column=s.time_column, weight_column=WEIGHT,
                             served_column=served)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["spec"] = self.spec.to_dict()
        d["rows"] = asdict(self.rows)
        d["weights"] = None if self.weights is None else asdict(self.weights)
        d["segments"] = [asdict(s) for s in self.segments]
        d["files"] = [asdict(f) for f in self.files]
        d["versions"] = dict(self.versions)
        d["seed"] = self.spec.seed   # also in spec; here for a reader's eye
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetManifest:
        if d.get("format") != FORMAT:
            raise DatasetError(f"unknown dataset manifest format {d.get('format')!r}")
        return cls(DatasetSpec.from_dict(d["spec"]), tuple(d["numeric"]), tuple(d["categorical"]),
                   RowCounts(**d["rows"]), None if d["weights"] is None else WeightSummary(**d["weights"]),
                   bool(d["fallback"]), d["fallback_reason"], tuple(SegmentCoverage(**s) for s in d["segments"]),
                   int(d["excluded_count"]), tuple(d["excluded_ids"]), bool(d["excluded_ids_truncated"]),
                   int(d["excluded_in_holdout"]), int(d["excluded_not_found"]), tuple(d["source_windows"]),
                   tuple(d["holdout_windows"]), tuple(d["holdout_span"]),  # type: ignore[arg-type]
                   tuple(FileDigest(**f) for f in d["files"]), dict(d["versions"]), int(d["format"]))


@dataclass(frozen=True, slots=True)
class DatasetSnapshot:
    train: pd.DataFrame
    holdout: pd.DataFrame
    manifest: DatasetManifest


# ----------------------------------------------------------------------------- helpers


def _key(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _keys(values: pd.Series | Sequence[Any]) -> np.ndarray:
    """Ids as comparable text (1, 1.0 and "1" agree); None for a missing id."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values,
                                  use_na_sentinel=True)
    lookup = np.array([_key(u) for u in uniques] + [None], dtype=object)
    return lookup[codes]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _numeric_like(s: pd.Series) -> bool:
    return _is_numeric(s) or bool(s.isna().all())


def _text(s: pd.Series) -> pd.Series:
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda v: v if v is None else _key(v)).astype(object)


def _harmonise(reference: pd.DataFrame, recent: pd.DataFrame, numeric: Sequence[str],
               categorical: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give every column the two frames share one dtype (numeric features float64, categorical
    ones text when their dtypes differ; other differing columns float64 if both numeric, else text)."""
    reference, recent = reference.copy(), recent.copy()
    for c in numeric:
        for name, f in (("reference", reference), ("recent", recent)):
            if f[c].dtype != np.float64:
                try:
                    f[c] = pd.to_numeric(f[c].astype(object).where(f[c].notna(), np.nan)).astype(np.float64)
                except (TypeError, ValueError) as e:
                    raise DatasetError(f"numeric feature {c!r} of the {name} rows holds non-numbers: {e}") from None
    for c in set(reference.columns) & set(recent.columns) - set(numeric):
        a, b = reference[c], recent[c]
        if a.dtype == b.dtype:
            continue
        if c in categorical or not (_numeric_like(a) and _numeric_like(b)):
            reference[c], recent[c] = _text(a), _text(b)
        else:
            reference[c], recent[c] = a.astype(np.float64), b.astype(np.float64)
    return reference, recent


def _time_key(s: pd.Series, name: str) -> np.ndarray:
    if _is_numeric(s):
        key = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        t = pd.to_datetime(s, utc=True) if pd.api.types.is_datetime64_any_dtype(s) else \
            pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
        key = ((t - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(key).any():
        raise DatasetError(f"{int(np.isnan(key).sum())} recent rows have a missing or unreadable {name!r}")
    return key


def _row_hashes(frame: pd.DataFrame, columns: Sequence[str], numeric: set[str]) -> np.ndarray:
    norm = pd.DataFrame({c: (frame[c].to_numpy(dtype=np.float64, na_value=np.nan) + 0.0) if c in numeric
                         else _text(frame[c]).fillna("\x00") for c in columns})
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()


def _write(frame: pd.DataFrame, path: Path) -> FileDigest:
    table = to_arrow(frame)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return FileDigest(path.name, _sha256(path), path.stat().st_size, len(frame))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _windows(frame: pd.DataFrame, column: str | None) -> tuple[int, ...]:
    if column is None or column not in frame.columns:
        return ()
    w = pd.to_numeric(frame[column], errors="coerce").dropna()
    return tuple(int(v) for v in np.unique(w.to_numpy()))


# ----------------------------------------------------------------------------- the build


def _weights(reference: pd.DataFrame, current: pd.DataFrame, spec: DatasetSpec, numeric: Sequence[str],
             categorical: Sequence[str]) -> tuple[np.ndarray | None, WeightSummary | None, str | None]:
    """(reference weights or None on fallback, their summary, the fallback reason)."""
    if not spec.weighting:
        return None, None, "reference weighting is off in the spec: recent rows only"
    if len(reference) < 5 or len(current) < 5:
        return None, None, f"too few rows for the domain classifier (reference {len(reference)}, recent {len(current)})"
    from detectors.rca.evaluate import density_ratio

    def features(f: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({c: f[c].to_numpy(dtype=np.float64) if c in numeric else _text(f[c]).to_numpy()
                             for c in (*numeric, *categorical)})

    raw, auc, _ = density_ratio(features(reference), features(current), seed=spec.seed, clip=math.inf,
                                max_iter=spec.domain_max_iter)
    clipped = raw > spec.clip
    w = np.minimum(raw, spec.clip)
    w = w / w.mean()
    ess = float(w.sum() ** 2 / (w ** 2).sum())
    share = ess / len(w)
    summary = WeightSummary(len(w), float(w.min()), float(np.median(w)), float(w.max()), int(clipped.sum()),
                            float(spec.clip), ess, share, float(auc))
    reasons = []
    if share < spec.min_ess_share:
        reasons.append(f"effective sample size {ess:.1f} is {share:.3f} of {len(w)} reference rows, "
                       f"below min_ess_share {spec.min_ess_share}")
    if auc >= spec.max_domain_auc:
        reasons.append(f"domain AUC {auc:.4f} >= max_domain_auc {spec.max_domain_auc}: reference and recent "
                       "inputs are nearly separable")
    if reasons:
        return None, summary, "; ".join(reasons) + ": recent rows only"
    return w, summary, None


def build_dataset(reference: pd.DataFrame, recent: pd.DataFrame, spec: DatasetSpec,
                  out_dir: str | Path) -> DatasetManifest:
    """Write the snapshot (``train.parquet``, ``holdout.parquet``, ``manifest.json``) into
    ``out_dir`` and return its manifest; :class:`LeakageError` (nothing written) when train and
    holdout share an id or a feature+label row, :class:`DatasetError` for unusable inputs."""
    s = spec
    need = [*s.features, s.target]
    for name, frame, cols in (("reference", reference, need),
                              ("recent", recent, need + [c for c in (s.time_column, s.id_column, s.prediction_column,
                                                                     s.score_column) if c is not None])):
        if missing := [c for c in cols if c not in frame.columns]:
            raise DatasetError(f"{name} rows lack columns {missing!r}")
        if frame.columns.has_duplicates:
            raise DatasetError(f"{name} rows have duplicate column names")
    if s.exclude_ids and s.id_column is None:
        raise DatasetError("exclude_ids given but the spec names no id_column")
    if s.categorical is not None:
        categorical = tuple(s.categorical)
    else:
        categorical = tuple(c for c in s.features if not (_numeric_like(recent[c]) and _numeric_like(reference[c])))
    numeric = tuple(c for c in s.features if c not in categorical)
    when = _time_key(recent[s.time_column], s.time_column)   # before harmonising may turn it into text
    reference, recent = _harmonise(reference, recent, numeric, categorical)
    # 1. labels
    ref_labelled, rec_labelled = reference[s.target].notna().to_numpy(), recent[s.target].notna().to_numpy()
    reference = reference[ref_labelled].reset_index(drop=True)
    recent = recent[rec_labelled].reset_index(drop=True)
    if len(recent) < 2:
        raise DatasetError(f"{len(recent)} labelled recent rows: a train/holdout split needs at least 2")
    # 2. holdout: the newest slice
    order = np.argsort(when[rec_labelled], kind="stable")
    recent = recent.iloc[order].reset_index(drop=True)
    n_hold = min(max(1, int(round(s.holdout_share * len(recent)))), len(recent) - 1)
    holdout = recent.iloc[len(recent) - n_hold:].reset_index(drop=True)
    recent_train = recent.iloc[: len(recent) - n_hold].reset_index(drop=True)
    # 3. label-noise suspects
    wanted = list(dict.fromkeys(_keys(list(s.exclude_ids)).tolist()))
    wanted_set = set(wanted)
    ref_has_ids = s.id_column is not None and s.id_column in reference.columns and s.reference_ids

    def drop_mask(frame: pd.DataFrame, use: bool) -> np.ndarray:
        if not wanted_set or not use:
            return np.zeros(len(frame), dtype=bool)
        return np.isin(_keys(frame[s.id_column]), list(wanted_set))

    ex_rec, ex_ref = drop_mask(recent_train, True), drop_mask(reference, ref_has_ids)
    ex_hold = drop_mask(holdout, s.id_column is not None)
    found = set(_keys(recent_train[s.id_column][ex_rec]).tolist()) | (
        set(_keys(reference[s.id_column][ex_ref]).tolist()) if ref_has_ids else set())
    removed = [k for k in wanted if k in found]
    seen_anywhere = found | (set(_keys(holdout[s.id_column][ex_hold]).tolist()) if s.id_column else set())
    recent_train = recent_train[~ex_rec].reset_index(drop=True)
    for seg in s.stale_segments:  # P(y|x) moved there: the reference's labels follow the old relation
        ex_ref = ex_ref | segment_mask(reference, seg)
    pool = reference[~ex_ref].reset_index(drop=True)   # reference rows train may use
    if len(recent_train) == 0:
        raise DatasetError("no recent train rows are left after the holdout and the exclusions")
    # 4. weights
    w, summary, reason = _weights(pool, recent_train, s, numeric, categorical)
    parts = [recent_train.assign(**{SOURCE: "recent", WEIGHT: 1.0})]
    in_train = np.zeros(len(pool), dtype=bool)
    if w is not None:
        parts.insert(0, pool.assign(**{SOURCE: "reference", WEIGHT: s.reference_weight * w}))
        in_train[:] = True
    train = pd.concat(parts, ignore_index=True)
    n_train_ref = int(in_train.sum())
    # 5. stratification
    rng = np.random.default_rng(s.seed)
    all_input = pd.concat([reference, recent], ignore_index=True)
    parsed: list[tuple[str, tuple[Predicate, ...] | None, str | None]] = []
    added_rows: list[pd.DataFrame] = []
    added_per: dict[str, int] = {}
    before: dict[str, int] = {}
    for seg in s.segments:
        try:
            preds = parse_segment(seg, train.columns)
            m_train, m_pool = _mask(train, preds), _mask(pool, preds)
        except SegmentError as e:
            parsed.append((seg, None, f"cannot parse: {e}"))
            continue
        before[seg] = int(m_train.sum())
        short = s.min_support - before[seg] - sum(int(_mask(a, preds).sum()) for a in added_rows)
        candidates = np.flatnonzero(m_pool & ~in_train)
        added_per[seg] = 0
        if short > 0 and len(candidates):
            take = np.sort(rng.choice(candidates, min(short, len(candidates)), replace=False))
            in_train[take] = True
            added_rows.append(pool.iloc[take].assign(**{SOURCE: "reference", WEIGHT: s.reference_weight}))
            added_per[seg] = len(take)
        parsed.append((seg, preds, None))
    if added_rows:
        train = pd.concat([train, *added_rows], ignore_index=True)
    coverage = []
    for seg, preds, why in parsed:
        if preds is None:
            coverage.append(SegmentCoverage(seg, 0, 0, 0, 0, 0, 0.0, False, why))
            continue
        m_after = _mask(train, preds)
        after = int(m_after.sum())
        covered = after >= s.min_support
        coverage.append(SegmentCoverage(
            seg, int(_mask(all_input, preds).sum()), before[seg], after, added_per[seg],
            int(_mask(holdout, preds).sum()), float(train[WEIGHT].to_numpy()[m_after].sum()), covered,
            None if covered else f"{after} train rows match (min_support {s.min_support}): no more labelled "
                                 "rows of this segment in the reference or the recent traffic"))
    # 6. leakage
    _check_leakage(train, holdout, s, numeric, ref_has_ids)
    # write
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    digests = (_write(train, out / "train.parquet"), _write(holdout, out / "holdout.parquet"))
    span = tuple(str(holdout[s.time_column].iloc[i]) for i in (0, -1))
    manifest = DatasetManifest(
        spec=s, numeric=numeric, categorical=categorical,
        rows=RowCounts(len(ref_labelled), len(rec_labelled), int((~ref_labelled).sum()), int((~rec_labelled).sum()),
                       int(ex_ref.sum()), int(ex_rec.sum()), n_train_ref, len(recent_train),
                       sum(len(a) for a in added_rows), len(holdout)),
        weights=summary, fallback=w is None, fallback_reason=reason, segments=tuple(coverage),
        excluded_count=int(ex_rec.sum() + ex_ref.sum()), excluded_ids=tuple(removed[: s.max_listed_ids]),
        excluded_ids_truncated=len(removed) > s.max_listed_ids, excluded_in_holdout=int(ex_hold.sum()),
        excluded_not_found=len(wanted_set - seen_anywhere),
        source_windows=_windows(recent, s.window_column), holdout_windows=_windows(holdout, s.window_column),
        holdout_span=span, files=digests, versions=_versions())  # type: ignore[arg-type]
    text = json.dumps(manifest.to_dict(), indent=1, allow_nan=False, ensure_ascii=False)
    tmp = out / f".manifest.json.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / "manifest.json")
    return manifest


def _check_leakage(train: pd.DataFrame, holdout: pd.DataFrame, s: DatasetSpec, numeric: Sequence[str],
                   ref_has_ids: bool) -> None:
    problems, ids, rows = [], (), 0
    if s.id_column is not None:
        checked = train if ref_has_ids else train[train[SOURCE] == "recent"]
        hold_keys = _keys(holdout[s.id_column])
        both = np.isin(hold_keys, _keys(checked[s.id_column])) & (hold_keys != None)  # noqa: E711
        if both.any():
            ids = tuple(dict.fromkeys(hold_keys[both].tolist()))[:20]
            problems.append(f"{int(both.sum())} holdout rows have an id that is also in train (e.g. {list(ids[:5])!r})")
    if s.check_duplicates:
        cols = [*s.features, s.target]
        hold_hash = _row_hashes(holdout, cols, set(numeric))
        dup = np.isin(hold_hash, _row_hashes(train, cols, set(numeric)))
        rows = int(dup.sum())
        if rows:
            example = (f" (e.g. holdout ids {list(_keys(holdout[s.id_column][dup]).tolist()[:5])!r})"
                       if s.id_column is not None else "")
            problems.append(f"{rows} holdout rows duplicate a train row in features + label{example}")
    if problems:
        raise LeakageError("leakage between train and holdout: " + "; ".join(problems) + ". The snapshot was not "
                           "written; fix the inputs (or the id space: reference_ids=False when the reference's "
                           "ids are not the traffic's)", ids, rows)


def load_dataset(out_dir: str | Path, *, verify: bool = True) -> DatasetSnapshot:
    """Read a snapshot back; with ``verify`` each file's sha256 must match the manifest."""
    d = Path(out_dir)
    try:
        manifest = DatasetManifest.from_dict(json.loads((d / "manifest.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DatasetError(f"{d} holds no manifest.json: not a complete dataset snapshot") from None
    if verify:
        for f in manifest.files:
            if (got := _sha256(d / f.name)) != f.sha256:
                raise DatasetError(f"{d / f.name}: sha256 {got} does not match the manifest's {f.sha256}")
    return DatasetSnapshot(pd.read_parquet(d / "train.parquet"), pd.read_parquet(d / "holdout.parquet"), manifest)
