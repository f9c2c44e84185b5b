"""Decode and validate a polled batch of prediction or label records.

One pass of orjson per record plus a few type checks is the only per-record Python on the hot
path; everything after it (timestamps, feature columns, schema checks) is numpy over the batch.
A record that breaks the message contract is returned as a :class:`Rejected` with a reason that
names the field, so the caller can dead-letter and count it; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Collection, Sequence

import numpy as np
import orjson
import pandas as pd

__all__ = ["Rejected", "Predictions", "Labels", "FeatureColumns", "decode_predictions", "decode_labels", "extract_features"]

_NUMBER = (int, float)
_MAX_EPOCH_S = 253402300800.0  # 10000-01-01T00:00:00Z: RFC 3339 years end at 9999


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that breaks the contract: its position in the polled batch and why."""

    position: int
    reason: str
    model: str | None = None


@dataclass(slots=True)
class Predictions:
    """Valid prediction records of one model from one batch, as columns."""

    model: str
    positions: np.ndarray  # int64 index into the polled batch
    ids: np.ndarray  # object (str)
    event_s: np.ndarray  # float64 epoch seconds
    prediction: np.ndarray  # float64 (classes are numeric) or object
    score: np.ndarray  # float64, NaN when absent
    features: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Labels:
    """Valid label records of one model from one batch, as columns."""

    model: str
    positions: np.ndarray
    ids: np.ndarray
    event_s: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _field_error(obj: Any, required: Sequence[str]) -> str | None:
    if not isinstance(obj, dict):
        return f"record is a JSON {_type_name(obj)}, expected an object"
    for name in required:
        if name not in obj:
            return f"missing required field '{name}'"
    return None


def _type_name(v: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


def _timestamps(raw: list[Any], broker_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds per record and a mask of unparseable timestamps.

    Numbers above 1e11 are read as milliseconds (1e11 s is the year 5138); strings as RFC 3339;
    absent (None) falls back to the broker timestamp.
    """
    n = len(raw)
    out = broker_ms.astype(float) / 1000.0
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return out, bad
    arr = np.empty(n, dtype=object)
    arr[:] = raw
    is_num = np.fromiter((type(v) in _NUMBER for v in raw), bool, n)
    is_str = np.fromiter((type(v) is str for v in raw), bool, n)
    if is_num.any():
        nums = arr[is_num].astype(float)
        secs = np.where(nums > 1e11, nums / 1000.0, nums)
        out[is_num] = secs
        bad[is_num] = ~((secs >= 0.0) & (secs < _MAX_EPOCH_S))  # e.g. nanoseconds: year > 9999
    if is_str.any():
        strs = pd.Series(arr[is_str])
        parsed = pd.to_datetime(strs, utc=True, format="ISO8601", errors="coerce")
        if parsed.isna().any():  # RFC 3339 also allows a lower-case "t" and "z"
            parsed = parsed.fillna(pd.to_datetime(strs.str.upper(), utc=True, format="ISO8601", errors="coerce"))
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        ok = parsed.notna().to_numpy()
        vals = out[is_str]
        vals[ok] = ns[ok] / 1e9
        out[is_str] = vals
        idx = np.flatnonzero(is_str)
        bad[idx[~ok]] = True
    other = ~is_num & ~is_str & (arr != None)  # noqa: E711 - elementwise None test
    bad |= other
    return out, bad


def _decode(values: Sequence[bytes | None], max_bytes: int) -> tuple[list[Any], list[Rejected]]:
    objs: list[Any] = [None] * len(values)
    rejected: list[Rejected] = []
    loads = orjson.loads
    for i, v in enumerate(values):
        if v is None:
            rejected.append(Rejected(i, "empty record (null value)"))
            continue
        if len(v) > max_bytes:
            rejected.append(Rejected(i, f"record of {len(v)} bytes exceeds the {max_bytes}-byte limit"))
            continue
        try:
            objs[i] = loads(v)
        except orjson.JSONDecodeError as e:
            rejected.append(Rejected(i, f"invalid JSON: {e}"))
    return objs, rejected


def _group(models: list[str], keep: list[int]) -> dict[str, np.ndarray]:
    if not keep:
        return {}
    pos = np.asarray(keep, dtype=np.int64)
    names = np.asarray([models[i] for i in keep], dtype=object)
    if len(set(names)) == 1:
        return {str(names[0]): pos}
    return {str(m): pos[names == m] for m in pd.unique(names)}


def decode_predictions(
    values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int = 1 << 20
) -> tuple[dict[str, Predictions], list[Rejected]]:
    """Decode prediction records; valid ones grouped by model, the rest rejected with a reason."""
    objs, rejected = _decode(values, max_bytes)
    done = {r.position for r in rejected}
    keep: list[int] = []
    models: list[str] = [""] * len(values)
    for i, o in enumerate(objs):
        if i in done:
            continue
        err = _field_error(o, ("prediction_id", "model", "features", "prediction"))
        if err is None:
            pid, model, feats, pred = o["prediction_id"], o["model"], o["features"], o["prediction"]
            if type(pid) is not str or not pid:
                err = f"field 'prediction_id' must be a non-empty string, got {_type_name(pid)}"
            elif type(model) is not str:
                err = f"field 'model' must be a string, got {_type_name(model)}"
            elif model not in known_models:
                err = f"unknown model {model!r}"
            elif type(feats) is not dict:
                err = f"field 'features' must be an object, got {_type_name(feats)}"
            elif type(pred) not in (int, float, str, bool):
                err = f"field 'prediction' must be a number, string or boolean, got {_type_name(pred)}"
            else:
                s = o.get("score")
                if s is not None and (type(s) not in _NUMBER or not 0.0 <= s <= 1.0):
                    err = f"field 'score' must be a probability in [0, 1], got {s!r}"[:200]
        if err is not None:
            rejected.append(Rejected(i, err, o.get("model") if isinstance(o, dict) and isinstance(o.get("model"), str) else None))
            continue
        keep.append(i)
        models[i] = model
    out: dict[str, Predictions] = {}
    for model, pos in _group(models, keep).items():
        recs = [objs[i] for i in pos]
        ts, bad_ts = _timestamps([r.get("timestamp") for r in recs], np.asarray(broker_ms)[pos])
        if bad_ts.any():
            for j in np.flatnonzero(bad_ts):
                rejected.append(Rejected(int(pos[j]), "field 'timestamp' must be RFC 3339 or epoch seconds/milliseconds", model))
            good = ~bad_ts
            pos, ts, recs = pos[good], ts[good], [r for r, g in zip(recs, good) if g]
        n = len(recs)
        ids = np.empty(n, dtype=object)
        ids[:] = [r["prediction_id"] for r in recs]
        preds = [r["prediction"] for r in recs]
        try:
            pred_arr = np.asarray(preds, dtype=float)
        except (TypeError, ValueError):
            pred_arr = np.empty(n, dtype=object)
            pred_arr[:] = preds
        score = np.fromiter((r.get("score") for r in recs), float, n) if n else np.empty(0)
        out[model] = Predictions(model, pos, ids, ts, pred_arr, np.where(np.isnan(score), np.nan, score), [r["features"] for r in recs])
    rejected.sort(key=lambda r: r.position)
    return out, rejected


def decode_labels(
    values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int = 1 << 20
) -> tuple[dict[str, Labels], list[Rejected]]:
    """Decode label records; valid ones grouped by model, the rest rejected with a reason."""
    objs, rejected = _decode(values, max_bytes)
    done = {r.position for r in rejected}
    keep: list[int] = []
    models: list[str] = [""] * len(values)
    for i, o in enumerate(objs):
        if i in done:
            continue
        err = _field_error(o, ("prediction_id", "model", "label"))
        if err is None:
            pid, model, label = o["prediction_id"], o["model"], o["label"]
            if type(pid) is not str or not pid:
                err = f"field 'prediction_id' must be a non-empty string, got {_type_name(pid)}"
            elif type(model) is not str:
                err = f"field 'model' must be a string, got {_type_name(model)}"
            elif model not in known_models:
                err = f"unknown model {model!r}"
            elif type(label) not in (int, float, str, bool):
                err = f"field 'label' must be a number, string or boolean, got {_type_name(label)}"
        if err is not None:
            rejected.append(Rejected(i, err, o.get("model") if isinstance(o, dict) and isinstance(o.get("model"), str) else None))
            continue
        keep.append(i)
        models[i] = model
    out: dict[str, Labels] = {}
    for model, pos in _group(models, keep).items():
        recs = [objs[i] for i in pos]
        ts, bad_ts = _timestamps([r.get("timestamp") for r in recs], np.asarray(broker_ms)[pos])
        if bad_ts.any():
            for j in np.flatnonzero(bad_ts):
                rejected.append(Rejected(int(pos[j]), "field 'timestamp' must be RFC 3339 or epoch seconds/milliseconds", model))
            good = ~bad_ts
            pos, ts, recs = pos[good], ts[good], [r for r, g in zip(recs, good) if g]
        n = len(recs)
        ids = np.empty(n, dtype=object)
        ids[:] = [r["prediction_id"] for r in recs]
        raw = [r["label"] for r in recs]
        try:
            lab = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            lab = np.empty(n, dtype=object)
            lab[:] = raw
        out[model] = Labels(model, pos, ids, ts, lab)
    rejected.sort(key=lambda r: r.position)
    return out, rejected


@dataclass(slots=True)
class FeatureColumns:
    """Feature values of a batch as columns, with per-record masks of contract problems."""

    values: dict[str, np.ndarray]
    missing: dict[str, np.ndarray]
    type_errors: dict[str, np.ndarray]
    unexpected: dict[str, int] = field(default_factory=dict)


_MISSING = object()
_NUMERIC_TYPES = frozenset({float, int, type(None)})  # not bool: a boolean is a type error
_CATEGORICAL_TYPES = frozenset({str, type(None)})


def extract_features(features: list[dict[str, Any]], numeric: Sequence[str], categorical: Sequence[str]) -> FeatureColumns:
    """Turn a list of feature objects into typed columns.

    Numeric features become float64 (null -> NaN); a string or boolean where a number is
    expected is a *type* violation and becomes NaN. Categorical features become object arrays
    of strings (numbers are accepted and stringified, since ``1`` and ``"1"`` name the same
    category). Keys not in the schema are counted as *unexpected*.
    """
    n = len(features)
    names = list(numeric) + list(categorical)
    values: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    type_errors: dict[str, np.ndarray] = {}
    if not names:
        return FeatureColumns(values, missing, type_errors, _unexpected(features, set()))
    getter = itemgetter(*names)
    try:
        rows = [getter(f) for f in features]
        if len(names) == 1:  # itemgetter of one key returns the value, not a 1-tuple
            rows = [(r,) for r in rows]
        any_missing = False
    except KeyError:
        rows = [tuple(f.get(k, _MISSING) for k in names) for f in features]
        any_missing = True
    cols = list(zip(*rows)) if n else [() for _ in names]
    numeric_set = set(numeric)
    for name, col in zip(names, cols):
        kinds = set(map(type, col))
        if kinds <= (_NUMERIC_TYPES if name in numeric_set else _CATEGORICAL_TYPES):
            # fast path, the usual case: every value present and of an accepted type
            if name in numeric_set:
                values[name] = np.array(col, dtype=float)  # None -> NaN
            else:
                values[name] = np.empty(n, dtype=object)
                values[name][:] = col
            missing[name] = np.zeros(n, dtype=bool)
            type_errors[name] = np.zeros(n, dtype=bool)
            continue
        arr = np.empty(n, dtype=object)
        arr[:] = col
        miss = (arr == _MISSING) if any_missing else np.zeros(n, dtype=bool)  # identity test, C loop
        if name in numeric_set:
            types = np.fromiter(map(type, col), object, n)
            ok = (types == float) | (types == int) | (arr == None)  # noqa: E711
            bad = ~ok & ~miss
            if bad.any() or miss.any():
                arr[~ok] = None
            values[name] = arr.astype(float)
            type_errors[name] = bad
        else:
            types = np.fromiter(map(type, col), object, n)
            bad = ((types == dict) | (types == list)) & ~miss
            arr[bad | miss] = None
            num = (types == int) | (types == float) | (types == bool)
            if num.any():  # 1 and "1" name the same category
                arr[num] = arr[num].astype(str).astype(object)
            values[name] = arr
            type_errors[name] = bad
        missing[name] = miss
    n_missing = np.sum(list(missing.values()), axis=0) if any_missing else 0
    return FeatureColumns(values, missing, type_errors, _unexpected(features, set(names), len(names) - n_missing))


def _unexpected(features: list[dict[str, Any]], known: set[str], present: np.ndarray | int = 0) -> dict[str, int]:
    lens = np.fromiter(map(len, features), np.int64, len(features))
    suspects = np.flatnonzero(lens > present)  # more keys than known ones present: some unexpected
    counts: dict[str, int] = {}
    for i in suspects:
        for k in features[i]:
            if k not in known:
                counts[k] = counts.get(k, 0) + 1
    return counts
