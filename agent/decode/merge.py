"""Putting one batch's groups back together: the rows the native scanner took and the rows
the other routes decoded, per model in record order; and single-record groups concatenated (the
record-by-record fallback)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.decode.features import FeatureSpec, TypedFeatures, extract_features, merge_columns
from agent.decode.records import Labels, Predictions

__all__ = ["first_seen_order", "merge_predictions", "merge_labels", "concat_predictions", "concat_labels"]


def first_seen_order(out: dict[str, Any], slow: dict[str, Any]) -> dict[str, Any]:
    """Both routes' groups, ordered by each model's first valid record."""
    out.update(slow)
    if len(out) < 2:
        return out
    return dict(sorted(out.items(), key=lambda kv: int(kv[1].positions[0])))


def _interleave(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merged positions and where each part's rows go in them."""
    pos = np.sort(np.concatenate([a, b]))
    return pos, np.searchsorted(pos, a), np.searchsorted(pos, b)


def _scatter(n: int, ia: np.ndarray, a: np.ndarray, ib: np.ndarray, b: np.ndarray) -> np.ndarray:
    dtype = a.dtype if a.dtype == b.dtype else object
    out = np.empty(n, dtype=dtype)
    out[ia] = a if dtype != object else a.astype(object)
    out[ib] = b if dtype != object else b.astype(object)
    return out


def merge_predictions(a: Predictions, b: Predictions, spec: FeatureSpec) -> Predictions:
    pos, ia, ib = _interleave(a.positions, b.positions)
    n = pos.size
    scores = None
    if b.scores is not None:
        scores = [None] * n
        for j, v in zip(ib.tolist(), b.scores):
            scores[j] = v
    assert a.columns is not None and b.columns is not None
    return Predictions(a.model, pos, _scatter(n, ia, a.ids, ib, b.ids), _scatter(n, ia, a.event_s, ib, b.event_s),
                       _scatter(n, ia, a.prediction, ib, b.prediction), _scatter(n, ia, a.score, ib, b.score), None,
                       scores, merge_columns(n, spec, [(ia, a.columns), (ib, b.columns)]))


def merge_labels(a: Labels, b: Labels) -> Labels:
    pos, ia, ib = _interleave(a.positions, b.positions)
    n = pos.size
    return Labels(a.model, pos, _scatter(n, ia, a.ids, ib, b.ids), _scatter(n, ia, a.event_s, ib, b.event_s),
                  _scatter(n, ia, a.label, ib, b.label))


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    if len({a.dtype for a in arrays}) == 1:
        return np.concatenate(arrays)
    return np.concatenate([a.astype(object) for a in arrays])


def concat_predictions(model: str, parts: list[Predictions], typed: TypedFeatures | None) -> Predictions:
    """One model's single-record groups (dict route: raw features) as one group, with typed
    columns where ``typed`` covers the model, as the fast routes give them."""
    feats = [f for p in parts for f in (p.features or [])]
    scores = [x for p in parts for x in (p.scores or [None] * len(p))]
    columns = None
    if typed is not None and model in typed.specs:
        spec = typed.specs[model]
        columns = extract_features(feats, spec.numeric, spec.categorical, spec.extra)
    return Predictions(model, _concat([p.positions for p in parts]), _concat([p.ids for p in parts]),
                       _concat([p.event_s for p in parts]), _concat([p.prediction for p in parts]),
                       _concat([p.score for p in parts]), None if columns is not None else feats,
                       scores if any(x is not None for x in scores) else None, columns)


def concat_labels(model: str, parts: list[Labels]) -> Labels:
    return Labels(model, _concat([p.positions for p in parts]), _concat([p.ids for p in parts]),
                  _concat([p.event_s for p in parts]), _concat([p.label for p in parts]))
