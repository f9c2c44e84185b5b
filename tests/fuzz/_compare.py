"""Equality of decoded batches (dtypes and values, floats bit for bit), shared by the fuzz drivers
and tests/unit/agent/decode/test_scan.py, and the invariants every decode must keep whatever its
input."""

from __future__ import annotations

import struct
from typing import Any, Sequence

import numpy as np


def _same(x: Any, y: Any) -> bool:
    """The same type and value: floats bit for bit (NaN equals NaN, -0.0 is not 0.0)."""
    if type(x) is not type(y):
        return False
    if type(x) is float:
        return struct.pack("d", x) == struct.pack("d", y) or (x != x and y != y)
    return bool(x == y)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Dtypes and values equal, not merely ``==``: a column the two routes write as float64 and
    as objects, or as 1.0 and True, differs."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(np.int64), b.view(np.int64)) or
                    np.array_equal(np.where(np.isnan(a), 0, a).view(np.int64), np.where(np.isnan(b), 0, b).view(np.int64))
                    and np.array_equal(np.isnan(a), np.isnan(b)))
    return all(map(_same, a.tolist(), b.tolist()))


def same_obj(x: Any, y: Any) -> bool:
    """:func:`_same` through lists and dicts (raw feature objects, class probabilities)."""
    if type(x) is not type(y):
        return False
    if type(x) is dict:
        return list(x) == list(y) and all(same_obj(x[k], y[k]) for k in x)
    if type(x) is list:
        return len(x) == len(y) and all(map(same_obj, x, y))
    return _same(x, y)


def assert_columns_equal(got: Any, want: Any, where: str) -> None:
    """Two FeatureColumns: every column of every part, and the unexpected-key counts."""
    for attr in ("values", "missing", "type_errors", "extra"):
        g, w = getattr(got, attr), getattr(want, attr)
        assert set(g) == set(w), (where, attr, sorted(g), sorted(w))
        for k in w:
            assert _equal(g[k], w[k]), (where, attr, k, g[k], w[k])
    assert got.unexpected == want.unexpected, (where, got.unexpected, want.unexpected)


def assert_groups_equal(got: dict[str, Any], want: dict[str, Any], attrs: Sequence[str], where: str,
                        columns: bool = False) -> None:
    """The same models in the same order, and per model the same arrays (dtypes included)."""
    assert list(got) == list(want), (where, list(got), list(want))
    for model, w in want.items():
        g = got[model]
        assert g.model == w.model == model, (where, g.model, w.model, model)
        for attr in attrs:
            assert _equal(getattr(g, attr), getattr(w, attr)), (where, model, attr, getattr(g, attr), getattr(w, attr))
        if columns:
            assert same_obj(g.scores, w.scores), (where, model, "scores", g.scores, w.scores)
            assert same_obj(g.features, w.features), (where, model, "features", g.features, w.features)
            assert (g.columns is None) == (w.columns is None), (where, model, "columns")
            if w.columns is not None:
                assert_columns_equal(g.columns, w.columns, f"{where}: {model}")


def assert_partition(n: int, groups: dict[str, Any], rejected: list[Any], known: Any, attrs: Sequence[str],
                     where: str) -> None:
    """Every record in exactly one group (by position) or rejected exactly once; well-formed groups."""
    seen = np.zeros(n, dtype=np.int64)
    for model, g in groups.items():
        assert type(model) is str and model in known, (where, model)
        pos = g.positions
        assert isinstance(pos, np.ndarray) and pos.dtype == np.int64 and pos.ndim == 1, (where, model, pos)
        assert pos.size > 0, (where, model, "empty group")
        assert np.all(np.diff(pos) > 0), (where, model, "positions not increasing", pos)
        assert 0 <= pos[0] and pos[-1] < n, (where, model, pos)
        for attr in attrs:
            col = getattr(g, attr)
            assert isinstance(col, np.ndarray) and col.shape == pos.shape, (where, model, attr, col)
        assert g.ids.dtype == object and all(type(i) is str and i for i in g.ids.tolist()), (where, model, g.ids)
        assert g.event_s.dtype == np.float64, (where, model, g.event_s.dtype)
        np.add.at(seen, pos, 1)
    last = -1
    for r in rejected:
        assert type(r.position) is int and 0 <= r.position < n, (where, r)
        assert r.position > last, (where, "rejections not in position order or repeated", rejected)
        last = r.position
        assert type(r.reason) is str and r.reason, (where, r)
        assert r.model is None or type(r.model) is str, (where, r)
        seen[r.position] += 1
    assert np.all(seen == 1), (where, "records not in exactly one group or rejection", seen.tolist())
