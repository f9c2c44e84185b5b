"""Checkpoint string columns: ids and segment values round-trip through the UTF-8 blob format,
and checkpoints written in format 1 (unicode arrays) are still read."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.state.checkpoint import _get_objects, _put_objects

VALUES = st.one_of(st.none(), st.text(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=False))


def _expected(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v if isinstance(v, str) else str(v)


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, max_size=40))
def test_objects_round_trip(values: list[Any]) -> None:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    arrays: dict[str, np.ndarray] = {}
    _put_objects(arrays, "k", arr)
    assert all(a.dtype != object for a in arrays.values())  # loadable with allow_pickle=False
    assert _get_objects(arrays, "k").tolist() == [_expected(v) for v in values]


def test_all_strings_fast_path_and_empty() -> None:
    ids = np.array(["p1", "päß", "", "\U0001f600x"], dtype=object)
    arrays: dict[str, np.ndarray] = {}
    _put_objects(arrays, "ids", ids)
    assert _get_objects(arrays, "ids").tolist() == ["p1", "päß", "", "\U0001f600x"]
    _put_objects(arrays, "none", np.empty(0, dtype=object))
    assert _get_objects(arrays, "none").tolist() == []


def test_reads_format_1_unicode_arrays() -> None:
    arrays = {"seg": np.array(["a", "", "c"]), "seg.null": np.array([False, True, False]),
              "ids": np.array(["p1", "p2"])}
    assert _get_objects(arrays, "seg").tolist() == ["a", None, "c"]
    assert _get_objects(arrays, "ids").tolist() == ["p1", "p2"]  # format-1 ids had no null mask


def test_text_cache_reuses_closed_columns_and_forgets_gone_ones() -> None:
    from agent.state.checkpoint import _TextCache

    cache = _TextCache()
    ids = np.array(["a", "b"], dtype=object)
    first: dict[str, np.ndarray] = {}
    cache.put(first, "w", ids, ("m0", 7, 2, "ids"))
    cache.rotate()
    again: dict[str, np.ndarray] = {}
    cache.put(again, "w", np.array(["changed"], dtype=object), ("m0", 7, 2, "ids"))  # same token: reused
    assert again["w.utf8"] is first["w.utf8"] and _get_objects(again, "w").tolist() == ["a", "b"]
    cache.rotate()
    cache.rotate()  # a save that did not use it: the window is gone
    fresh: dict[str, np.ndarray] = {}
    cache.put(fresh, "w", np.array(["c"], dtype=object), ("m0", 7, 2, "ids"))
    assert _get_objects(fresh, "w").tolist() == ["c"]
    untracked: dict[str, np.ndarray] = {}
    cache.put(untracked, "o", ids, None)  # an open window: always encoded afresh
    assert _get_objects(untracked, "o").tolist() == ["a", "b"]
