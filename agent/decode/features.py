"""A record's ``features`` object -> typed columns per batch, with the contract problems counted.

Two routes give the same :class:`FeatureColumns`:

* :func:`extract_features` from decoded dicts: any shape of input, every problem named
  (missing key, wrong type, unexpected key);
* :class:`TypedFeatures`: per model, msgspec structs generated from the reference's feature
  list decode a clean record straight into typed fields (no dict, no key strings) and the batch
  is read into columns with C-level attribute getters. A record the strict types refuse
  (a null, a missing or unknown key, a wrong type) falls back to a nullable struct and then to
  the dict route, so its problems are still counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Iterable, Sequence, Union

import msgspec
import numpy as np

__all__ = ["FeatureSpec", "FeatureColumns", "TypedFeatures", "extract_features", "merge_columns"]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """The keys a model's ``features`` object carries: numeric and categorical features, and
    ``extra`` keys that are expected but not features (segment columns)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    extra: tuple[str, ...] = ()


@dataclass(slots=True)
class FeatureColumns:
    """Feature values of a batch as columns, with per-record masks of contract problems.

    ``extra`` holds the spec's extra keys as object arrays (None where absent)."""

    values: dict[str, np.ndarray]
    missing: dict[str, np.ndarray]
    type_errors: dict[str, np.ndarray]
    unexpected: dict[str, int] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, keep: np.ndarray) -> FeatureColumns:
        """Rows where ``keep`` is True (unexpected-key counts stay those of the whole batch)."""
        return FeatureColumns({k: v[keep] for k, v in self.values.items()},
                              {k: v[keep] for k, v in self.missing.items()},
                              {k: v[keep] for k, v in self.type_errors.items()}, dict(self.unexpected),
                              {k: v[keep] for k, v in self.extra.items()})


_MISSING = object()
_NUMERIC_TYPES = frozenset({float, int, type(None)})  # not bool: a boolean is a type error
_CATEGORICAL_TYPES = frozenset({str, type(None)})


def _objects(values: Iterable[Any], n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = list(values)
    return out


def extract_features(features: list[dict[str, Any]], numeric: Sequence[str], categorical: Sequence[str],
                     extra: Sequence[str] = ()) -> FeatureColumns:
    """Turn a list of feature objects into typed columns.

    Numeric features become float64 (null -> NaN); a string or boolean where a number is
    expected is a *type* violation and becomes NaN. Categorical features become object arrays
    of strings (numbers are accepted and stringified, since ``1`` and ``"1"`` name the same
    category). Keys not in the schema (nor in ``extra``) are counted as *unexpected*.
    """
    n = len(features)
    names = list(numeric) + list(categorical)
    values: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    type_errors: dict[str, np.ndarray] = {}
    extras = {k: _objects((f.get(k) for f in features), n) for k in extra}
    known = set(names) | set(extra)
    if not names:
        return FeatureColumns(values, missing, type_errors, _unexpected(features, known), extras)
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
            values[name] = np.array(col, dtype=float) if name in numeric_set else _objects(col, n)  # None -> NaN
            missing[name] = np.zeros(n, dtype=bool)
            type_errors[name] = np.zeros(n, dtype=bool)
            continue
        arr = _objects(col, n)
        miss = (arr == _MISSING) if any_missing else np.zeros(n, dtype=bool)  # identity test, C loop
        types = np.fromiter(map(type, col), object, n)
        if name in numeric_set:
            ok = (types == float) | (types == int) | (arr == None)  # noqa: E711
            bad = ~ok & ~miss
            if bad.any() or miss.any():
                arr[~ok] = None
            values[name] = arr.astype(float)
        else:
            bad = ((types == dict) | (types == list)) & ~miss
            arr[bad | miss] = None
            num = (types == int) | (types == float) | (types == bool)
            if num.any():  # 1 and "1" name the same category
                arr[num] = arr[num].astype(str).astype(object)
            values[name] = arr
        type_errors[name] = bad
        missing[name] = miss
    n_present = len(names) - (np.sum(list(missing.values()), axis=0) if any_missing else 0)
    extra_present = sum((np.fromiter((k in f for f in features), bool, n) for k in extra), np.zeros(n, np.int64))
    return FeatureColumns(values, missing, type_errors, _unexpected(features, known, n_present + extra_present), extras)


def _unexpected(features: list[dict[str, Any]], known: set[str], present: np.ndarray | int = 0) -> dict[str, int]:
    lens = np.fromiter(map(len, features), np.int64, len(features))
    suspects = np.flatnonzero(lens > present)  # more keys than known ones present: some unexpected
    counts: dict[str, int] = {}
    for i in suspects:
        for k in features[i]:
            if k not in known:
                counts[k] = counts.get(k, 0) + 1
    return counts


def merge_columns(n: int, spec: FeatureSpec, parts: list[tuple[np.ndarray, FeatureColumns]]) -> FeatureColumns:
    """One batch's columns from parts decoded by different routes (``parts``: row indices, columns)."""
    if len(parts) == 1 and len(parts[0][0]) == n:
        return parts[0][1]
    values = {k: np.full(n, np.nan) for k in spec.numeric}
    values.update({k: np.full(n, None, dtype=object) for k in spec.categorical})
    missing = {k: np.zeros(n, dtype=bool) for k in values}
    type_errors = {k: np.zeros(n, dtype=bool) for k in values}
    extra = {k: np.full(n, None, dtype=object) for k in spec.extra}
    unexpected: dict[str, int] = {}
    for idx, c in parts:
        for dst, src in ((values, c.values), (missing, c.missing), (type_errors, c.type_errors), (extra, c.extra)):
            for k, v in src.items():
                dst[k][idx] = v
        for k, cnt in c.unexpected.items():
            unexpected[k] = unexpected.get(k, 0) + cnt
    return FeatureColumns(values, missing, type_errors, unexpected, extra)


_PREDICTION_FIELDS = [
    ("prediction_id", str),
    ("prediction", Union[bool, int, float, str]),
    ("score", Union[float, None], None),
    ("scores", Union[dict[str, float], None], None),
    ("timestamp", Union[float, str, None], None),
]


class _NoModel(msgspec.Struct, tag_field="model", tag="\x00driftwarden: no model", gc=False):
    """The union's second member when one model is typed (see :class:`TypedFeatures`)."""


class TypedFeatures:
    """Per-model typed prediction decoders: a strict one (every feature present, numbers as
    numbers, categories as strings or null, no other keys) and a nullable one (numeric nulls too).

    Both decode one JSON record in one msgspec call into a tagged union over the models (the
    ``model`` field picks the struct; the struct's class attribute ``model`` names it), so a
    batch of several models needs no second pass.
    """

    def __init__(self, specs: dict[str, FeatureSpec]) -> None:
        self.specs = dict(specs)
        self.strict: dict[type, str] = {}
        self.nullable: dict[type, str] = {}
        strict_types, nullable_types = [], []
        for i, (model, spec) in enumerate(sorted(self.specs.items())):
            for nullable, registry, types in ((False, self.strict, strict_types), (True, self.nullable, nullable_types)):
                num = Union[float, None] if nullable else float
                feats = msgspec.defstruct(
                    f"Features{i}{'n' if nullable else 's'}",
                    [(k, num) for k in spec.numeric] + [(k, Union[str, None]) for k in spec.categorical]
                    + [(k, Any, None) for k in spec.extra],
                    forbid_unknown_fields=True, kw_only=True, gc=False)
                cls = msgspec.defstruct(f"Prediction{i}{'n' if nullable else 's'}",
                                        [_PREDICTION_FIELDS[0], ("features", feats), *_PREDICTION_FIELDS[1:]],
                                        tag_field="model", tag=model, kw_only=True, namespace={"model": model},
                                        gc=False)
                registry[cls] = model
                types.append(cls)
        # With one model a "union" of one struct is that struct, and msgspec would not require
        # its tag: a record without "model" would be taken for the only model. A second struct
        # whose tag no record names keeps the tag required.
        for types in (strict_types, nullable_types):
            if len(types) == 1:
                types.append(_NoModel)
        self._strict = msgspec.json.Decoder(Union[tuple(strict_types)]).decode if strict_types else None
        self._nullable = msgspec.json.Decoder(Union[tuple(nullable_types)]).decode if nullable_types else None

    def decode(self, value: bytes) -> Any:
        """The typed struct of a clean record; raises msgspec errors for anything else."""
        if self._strict is None or self._nullable is None:
            raise msgspec.ValidationError("no typed models")
        try:
            out = self._strict(value)
        except msgspec.ValidationError:
            out = self._nullable(value)
        if type(out) is _NoModel:
            raise msgspec.ValidationError("no such model")
        return out

    def columns(self, model: str, feats: list[Any], strict: bool) -> FeatureColumns:
        """Columns of typed feature structs (all strict, or all nullable) of one model."""
        spec = self.specs[model]
        n, k = len(feats), len(spec.numeric)
        values: dict[str, np.ndarray] = {}
        rows = list(map(msgspec.structs.astuple, feats))  # numeric fields first, in spec order
        if k:
            width = len(spec.numeric) + len(spec.categorical) + len(spec.extra)
            flat = rows if k == width else map(itemgetter(slice(0, k)), rows)
            if strict:  # every value a float: one C pass
                block = np.fromiter(chain.from_iterable(flat), float, n * k).reshape(n, k).T.copy()
            else:  # None -> NaN
                block = np.array(list(flat), dtype=float).reshape(n, k).T.copy()
            values.update(zip(spec.numeric, block))
        for j, name in enumerate(spec.categorical, start=k):
            values[name] = _objects(map(itemgetter(j), rows), n)
        masks = {name: np.zeros(n, dtype=bool) for name in values}
        start = k + len(spec.categorical)
        extra = {name: _objects(map(itemgetter(j), rows), n) for j, name in enumerate(spec.extra, start=start)}
        return FeatureColumns(values, masks, {name: m.copy() for name, m in masks.items()}, {}, extra)
