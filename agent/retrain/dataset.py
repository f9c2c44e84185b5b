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
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from agent.retrain.dataset_columns import _harmonise, _keys, _numeric_like, _row_hashes, _text, _time_key
from agent.retrain.dataset_manifest import (FORMAT, DatasetManifest, DatasetSnapshot, FileDigest, RowCounts,
                                            SegmentCoverage, WeightSummary)
from agent.retrain.dataset_spec import SOURCE, WEIGHT, DatasetError, DatasetSpec, LeakageError, Task
from agent.retrain.segments import Predicate, SegmentError, parse_segment, segment_mask
from agent.retrain.segments import _mask as _mask
from agent.retrain.traffic import to_arrow

__all__ = ["DatasetSpec", "DatasetManifest", "DatasetSnapshot", "RowCounts", "WeightSummary", "SegmentCoverage",
           "FileDigest", "DatasetError", "LeakageError", "SegmentError", "Predicate", "parse_segment",
           "segment_mask", "build_dataset", "load_dataset", "WEIGHT", "SOURCE", "FORMAT", "Task"]

_PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "torch", "driftwarden")


# ----------------------------------------------------------------------------- helpers


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
