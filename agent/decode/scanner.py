"""Native scan of prediction and label records into numpy columns (``agent/decode/_scan.c``).

The scanner knows each model's feature keys, so a record is parsed once and its numbers land
in float64 column buffers without a Python object per value. It only accepts what it fully
understands and marks every other record for the exact Python route (:mod:`agent.decode.decoder`),
which names the problem; :class:`agent.decode.decoder.Decoder` merges both in record order.
Without a C compiler at install time the extension is missing, :data:`NATIVE` is False and the
agent decodes with msgspec alone (slower, same results).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from agent.decode.features import FeatureColumns, FeatureSpec

try:
    from agent.decode import _scan
except ImportError:  # built without a C compiler: the msgspec route decodes everything
    _scan = None

__all__ = ["NATIVE", "RecordScanner", "Scanned"]

NATIVE = _scan is not None


@dataclass(slots=True)
class Scanned:
    """One batch as the scanner left it; rows where ``ok`` is False hold nothing meaningful."""

    ok: np.ndarray  # bool
    model: np.ndarray  # int32 index into RecordScanner.models
    ts: np.ndarray  # float64 numeric timestamp, NaN when absent or null
    ts_str: list[str | None] | None  # string timestamps (None unless some record has one)
    value: np.ndarray  # float64 prediction or label (booleans as 0/1)
    score: np.ndarray | None  # float64, NaN when absent (predictions only)
    ids: list[str | None]
    numeric: tuple[np.ndarray, ...]  # per model: (n_numeric, n) block, one row per feature
    objects: tuple[list[list[Any]], ...]  # per model: categorical then extra columns


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class RecordScanner:
    """Scans batches for a fixed set of models (``specs``: model name -> its feature keys).

    One per pipeline, used from one thread (it keeps per-column caches of category strings:
    the first 128 distinct short values of each column, enough for categories; a
    high-cardinality column just misses the cache). Records whose ``features`` come before
    ``model`` are left to msgspec when there are several models (the layout is not known yet).
    """

    def __init__(self, specs: Mapping[str, FeatureSpec]) -> None:
        if _scan is None:
            raise RuntimeError("agent.decode._scan is not built (no C compiler at install time)")
        if not specs:
            raise ValueError("RecordScanner needs at least one model")
        self.models = tuple(sorted(specs))
        self.specs = {m: specs[m] for m in self.models}
        self._scanner = _scan.Scanner(tuple((m, tuple(s.numeric), tuple(s.categorical), tuple(s.extra))
                                            for m, s in self.specs.items()))

    def scan(self, values: Sequence[bytes | None], max_bytes: int, labels: bool = False) -> Scanned:
        """Scan prediction records (or label records with ``labels``)."""
        vals = values if type(values) is list else list(values)
        n = len(vals)
        status = np.zeros(n, dtype=np.uint8)
        model = np.zeros(n, dtype=np.int32)
        ts, value = np.empty(n), np.empty(n)
        score = None if labels else np.empty(n)
        numeric = () if labels else tuple(np.empty((len(s.numeric), n)) for s in self.specs.values())
        ids, ts_str, objects = self._scanner.scan(vals, max_bytes, labels, status, model, ts, value, score, numeric)
        return Scanned(status.view(bool), model, ts, ts_str, value, score, ids, numeric, objects)

    def columns(self, s: Scanned, k: int, pos: np.ndarray) -> FeatureColumns:
        """Feature columns of model ``k`` at rows ``pos`` (views of the scan's block when
        ``pos`` is every row)."""
        spec = self.specs[self.models[k]]
        block, objs = s.numeric[k], s.objects[k]
        every = pos.size == len(s.ok)
        values = {name: block[j] if every else block[j, pos] for j, name in enumerate(spec.numeric)}
        for j, name in enumerate(spec.categorical):
            values[name] = _objects(objs[j]) if every else _objects(objs[j])[pos]
        extra = {}
        for j, name in enumerate(spec.extra, start=len(spec.categorical)):
            extra[name] = _objects(objs[j]) if every else _objects(objs[j])[pos]
        masks = {name: np.zeros(pos.size, dtype=bool) for name in values}
        return FeatureColumns(values, masks, {name: m.copy() for name, m in masks.items()}, {}, extra)
