"""Schema of a reference data set, and validation of records and batches against it.

The schema is *inferred* from the reference (types, numeric range and quantiles, category set,
null rate, cardinality) and round-trips through plain dicts, so it can be reviewed and pinned
as YAML/JSON next to the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping, Self

import numpy as np
import pandas as pd

__all__ = ["ColumnSchema", "Schema", "BatchViolations"]

Kind = Literal["numeric", "categorical"]
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """What the reference says about one column.

    >>> c = ColumnSchema.infer("x", pd.Series([1.0, 3.0, None]))
    >>> c.kind, c.null_rate, c.min, c.max
    ('numeric', 0.3333333333333333, 1.0, 3.0)
    >>> ColumnSchema.from_dict(c.to_dict()) == c
    True
    """

    name: str
    kind: Kind
    dtype: str
    null_rate: float
    cardinality: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    categories_capped: bool = False

    @classmethod
    def infer(cls, name: str, values: pd.Series, max_categories: int = 200) -> ColumnSchema:
        s = pd.Series(values)
        null_rate = float(s.isna().mean()) if len(s) else 0.0
        nonnull = s.dropna()
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if numeric:
            v = nonnull.to_numpy(dtype=float)
            if v.size == 0:
                raise ValueError(f"column {name!r} has no non-null values in the reference")
            qs = np.quantile(v, _QUANTILES)
            return cls(
                name=name, kind="numeric", dtype=str(s.dtype), null_rate=null_rate,
                cardinality=int(nonnull.nunique()), min=float(v.min()), max=float(v.max()),
                mean=float(v.mean()), std=float(v.std()),
                quantiles={f"p{int(q * 100):02d}": float(x) for q, x in zip(_QUANTILES, qs)},
            )
        freq = nonnull.map(str).value_counts()
        cats = tuple(sorted(freq.index[:max_categories].tolist()))
        return cls(
            name=name, kind="categorical", dtype=str(s.dtype), null_rate=null_rate,
            cardinality=int(freq.size), categories=cats, categories_capped=freq.size > max_categories,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["categories"] = list(self.categories)
        return {k: v for k, v in d.items() if v not in (None, {}, []) or k in ("name", "kind")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnSchema:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown schema keys for column {d.get('name')!r}: {sorted(unknown)}")
        kw = dict(d)
        kw["categories"] = tuple(kw.get("categories", ()))
        kw["quantiles"] = dict(kw.get("quantiles", {}))
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class BatchViolations:
    """Counts per feature for one batch: ``schema[(feature, kind)]`` with kind in
    missing/type/unexpected, ``skew[(feature, kind)]`` with kind in
    out_of_range/unseen_category/null. Only non-zero entries are kept.

    JSON has no tuple keys, so :meth:`to_dict` nests them: ``{"schema": {feature: {kind: n}},
    "skew": {feature: {kind: n}}}``.

    >>> v = BatchViolations({("y", "unexpected"): 1}, {("x", "out_of_range"): 2, ("x", "null"): 1})
    >>> v.to_dict()
    {'schema': {'y': {'unexpected': 1}}, 'skew': {'x': {'out_of_range': 2, 'null': 1}}}
    >>> BatchViolations.from_dict(v.to_dict()) == v
    True
    """

    schema: dict[tuple[str, str], int]
    skew: dict[tuple[str, str], int]

    def to_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{"schema": {feature: {kind: n}}, "skew": {feature: {kind: n}}}``."""
        out: dict[str, dict[str, dict[str, int]]] = {"schema": {}, "skew": {}}
        for part, counts in (("schema", self.schema), ("skew", self.skew)):
            for (feature, kind), n in counts.items():
                out[part].setdefault(feature, {})[kind] = int(n)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Mapping[str, int]]]) -> BatchViolations:
        """Inverse of :meth:`to_dict`."""
        def flat(part: str) -> dict[tuple[str, str], int]:
            return {(f, k): int(n) for f, kinds in d[part].items() for k, n in kinds.items()}

        return cls(flat("schema"), flat("skew"))


@dataclass(frozen=True, slots=True)
class Schema:
    """Ordered column schemas of a reference set.

    >>> s = Schema.infer(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    >>> [c.kind for c in s.columns]
    ['numeric', 'categorical']
    >>> Schema.from_dict(s.to_dict()) == s
    True
    """

    columns: tuple[ColumnSchema, ...]

    @classmethod
    def infer(cls, frame: pd.DataFrame, columns: list[str] | None = None, max_categories: int = 200) -> Self:
        names = list(frame.columns) if columns is None else columns
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ValueError(f"columns not in the reference: {missing}")
        return cls(tuple(ColumnSchema.infer(c, frame[c], max_categories) for c in names))

    def __getitem__(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(tuple(ColumnSchema.from_dict(c) for c in d["columns"]))

    def check_batch(
        self,
        values: Mapping[str, np.ndarray],
        missing: Mapping[str, np.ndarray],
        type_errors: Mapping[str, np.ndarray],
        unexpected: Mapping[str, int],
        codes: Mapping[str, np.ndarray] | None = None,
    ) -> BatchViolations:
        """Count violations in one decoded batch, vectorised per column.

        ``values[name]``: float array (numeric, NaN = null) or object array (categorical);
        ``missing``/``type_errors``: boolean masks of records where the key was absent or had
        the wrong JSON type; ``unexpected``: count of keys not in the schema; ``codes``:
        category codes from :class:`~detectors.binning.CategoricalBins` (``-1`` null, ``k`` other)
        when already computed, to avoid a second lookup.
        """
        schema: dict[tuple[str, str], int] = {}
        skew: dict[tuple[str, str], int] = {}
        for col in self.columns:
            n_missing = int(missing[col.name].sum())
            n_type = int(type_errors[col.name].sum())
            if n_missing:
                schema[(col.name, "missing")] = n_missing
            if n_type:
                schema[(col.name, "type")] = n_type
            v = values[col.name]
            absent = missing[col.name] | type_errors[col.name]
            if col.kind == "numeric":
                null = np.isnan(v) & ~absent
                with np.errstate(invalid="ignore"):
                    oor = int(((v < col.min) | (v > col.max)).sum())
                if oor:
                    skew[(col.name, "out_of_range")] = oor
            else:
                c = codes[col.name] if codes is not None and col.name in codes else None
                if c is None:
                    null = pd.isna(v) & ~absent
                    known = np.array(col.categories, dtype=object)
                    unseen = 0 if col.categories_capped else int(
                        (~pd.isna(v) & ~np.isin(v.astype(str), known)).sum()
                    )
                else:
                    null = (c < 0) & ~absent
                    unseen = 0 if col.categories_capped else int((c == len(col.categories)).sum())
                if unseen:
                    skew[(col.name, "unseen_category")] = unseen
            n_null = int(null.sum())
            if n_null:
                skew[(col.name, "null")] = n_null
        for name, n in unexpected.items():
            if n:
                schema[(name, "unexpected")] = int(n)
        return BatchViolations(schema, skew)
