"""The search behind :func:`detectors.rca.find_slices`: candidate pool, pruning bound, ranking.

See :mod:`detectors.rca.slices` for the statistic, the bound and the specificity rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from detectors.rca._stats import Totals, compare, evaluate

__all__ = ["Column", "Pool", "level_stats", "pair_bound", "rank", "search_pairs"]


class Pool:
    """Statistics of every evaluated eligible candidate (column-wise arrays, appended per block)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._top = np.empty(0)

    def add(self, ca: int, la: np.ndarray, cb: int, lb: np.ndarray, support: np.ndarray, sums: np.ndarray,
            sq: np.ndarray | None, score: np.ndarray, p: np.ndarray, top_k: int) -> None:
        m = len(la)
        self._parts.append((np.full(m, ca, np.int32), la.astype(np.int32), np.full(m, cb, np.int32),
                            lb.astype(np.int32), support.astype(np.int64), sums,
                            np.zeros(m) if sq is None else sq, score, p))
        positive = score[score > 0]
        if positive.size:
            merged = np.concatenate([self._top, positive])
            self._top = merged[np.argpartition(merged, -top_k)[-top_k:]] if merged.size > top_k else merged

    def kth_best(self, top_k: int) -> float:
        """The current ``top_k``-th best positive score (0 while fewer are known)."""
        return float(self._top.min()) if self._top.size >= top_k else 0.0

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self._parts:
            return tuple(np.empty(0, dt) for dt in (np.int32,) * 4 + (np.int64,) + (np.float64,) * 4)
        return tuple(np.concatenate(col) for col in zip(*self._parts))


@dataclass(frozen=True, slots=True)
class Column:
    codes: np.ndarray       # window codes
    err_codes: np.ndarray   # codes of the rows with an error (0/1 errors only)
    k: int
    count: np.ndarray       # rows per level
    sums: np.ndarray        # errors (0/1) or centred losses per level
    sq: np.ndarray | None   # squared centred losses per level (losses only)
    positive: np.ndarray    # errors (0/1) or positive centred losses per level (for the bound)
    significant: np.ndarray  # level eligible and raw p <= alpha


def pair_bound(a: Column, b: Column, totals: Totals, support: int) -> np.ndarray:
    """Upper bound of the score of every cell of a column pair (see the module docstring)."""
    n = totals.n
    if totals.binary:
        k = np.minimum.outer(a.positive, b.positive)
        s = np.maximum(k, support)
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (k * n - s * totals.sum) / (n - s)
        return np.where(np.isnan(bound), np.inf, bound)  # every row an error: never prune on 0/0
    pos = np.minimum.outer(a.positive, b.positive)
    s_max = np.minimum(np.minimum.outer(a.count, b.count), n - support)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pos * n / (n - s_max)


def level_stats(codes: np.ndarray, err_codes: np.ndarray, k: int, c: np.ndarray | None,
                 c2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    count = np.bincount(codes, minlength=k)
    if c is None:
        return count, np.bincount(err_codes, minlength=k).astype(np.float64), None
    return count, np.bincount(codes, weights=c, minlength=k), np.bincount(codes, weights=c2, minlength=k)


def column_order(pool: Pool, m: int) -> list[int]:
    ca, _, cb, _, _, _, _, score, _ = pool.arrays()
    best = np.zeros(m)
    np.maximum.at(best, ca[cb < 0], np.maximum(score[cb < 0], 0.0))
    return sorted(range(m), key=lambda j: (-best[j], j))


def search_pairs(columns: list[Column], totals: Totals, support: int, top_k: int, pool: Pool,
                 c: np.ndarray | None, c2: np.ndarray | None, prune: bool) -> tuple[int, int]:
    """Evaluate every column pair not skipped by the bound into ``pool``, one pair at a time
    (``O(rows)`` temporary memory). Returns (column pairs skipped, their eligible cells)."""
    n, binary = totals.n, totals.binary
    pruned = pruned_cells = 0
    order = column_order(pool, len(columns))  # best single slices first: the bar rises early
    for ia, ib in combinations(order, 2):
        ja, jb = min(ia, ib), max(ia, ib)
        a, b = columns[ja], columns[jb]
        elig_parent = np.minimum.outer(a.count, b.count) >= support
        if not elig_parent.any():
            continue
        sig = (a.significant[:, None] | b.significant[None, :]) & elig_parent
        if prune and not sig.any():
            bound = pair_bound(a, b, totals, support)
            if not (bound[elig_parent] >= pool.kth_best(top_k)).any():
                pruned += 1
                pruned_cells += int(elig_parent.sum())
                continue
        cell = a.codes.astype(np.intp) * b.k
        cell += b.codes
        if binary:
            err_cell = a.err_codes.astype(np.intp) * b.k
            err_cell += b.err_codes
        else:
            err_cell = cell[:0]
        count, sums, sq = level_stats(cell, err_cell, a.k * b.k, c, c2)
        del cell, err_cell
        eligible = np.flatnonzero((count >= support) & (n - count >= support))
        st = evaluate(count[eligible], sums[eligible], None if sq is None else sq[eligible], totals)
        pool.add(ja, eligible // b.k, jb, eligible % b.k, count[eligible], sums[eligible],
                 None if sq is None else sq[eligible], st.score, st.p_value, top_k)
    return pruned, pruned_cells


def rank(ca: np.ndarray, la: np.ndarray, cb: np.ndarray, lb: np.ndarray, s: np.ndarray, sums: np.ndarray,
         sq: np.ndarray, score: np.ndarray, significant: np.ndarray, totals: Totals, level: float, top_k: int,
         binary: bool) -> list[int]:
    """Indices of the reported candidates, best first (score, then the specificity rule)."""
    positive = np.flatnonzero(score > 0)
    is_pair = cb >= 0
    # score descending; ties: single before pair, then column and level order (deterministic)
    order = positive[np.lexsort((lb[positive], cb[positive], la[positive], ca[positive], is_pair[positive],
                                 -score[positive]))]
    chosen: list[int] = []
    seen: set[int] = set()

    def emit(i: int) -> None:
        if i not in seen and len(chosen) < top_k:
            chosen.append(i)
            seen.add(i)

    for i in order:
        if len(chosen) >= top_k:
            break
        if i in seen:
            continue
        if not is_pair[i]:
            child = _explaining_child(int(i), ca, la, cb, lb, s, sums, sq, score, significant, totals, level,
                                      binary)
            if child is not None:
                emit(child)
        emit(int(i))
    return chosen


def _explaining_child(i: int, ca: np.ndarray, la: np.ndarray, cb: np.ndarray, lb: np.ndarray, s: np.ndarray,
                      sums: np.ndarray, sq: np.ndarray, score: np.ndarray, significant: np.ndarray,
                      totals: Totals, level: float, binary: bool) -> int | None:
    """The best pair inside single slice ``i`` that explains it (module docstring), or None."""
    col, lvl = ca[i], la[i]
    inside = ((ca == col) & (la == lvl)) | ((cb == col) & (lb == lvl))
    cand = np.flatnonzero(inside & (cb >= 0) & significant & (score >= 0.5 * score[i]))
    if cand.size == 0:
        return None
    cand = cand[np.argsort(-score[cand], kind="stable")]
    # remainder P \ C against the window outside P
    n1 = s[i] - s[cand]
    sum1 = sums[i] - sums[cand]
    n2 = np.full(cand.size, totals.n - s[i])
    sum2 = np.full(cand.size, totals.sum - sums[i])
    sq1 = sq2 = None
    if not binary:
        sq1 = sq[i] - sq[cand]
        sq2 = np.full(cand.size, totals.sumsq - sq[i])
    with np.errstate(divide="ignore", invalid="ignore"):
        _, _, p = compare(np.maximum(n1, 1), sum1, sq1, n2, sum2, sq2, totals)
    ok = np.flatnonzero((p > level) | (n1 < 2))  # a remainder of 0-1 rows: C is all of P
    return int(cand[ok[0]]) if ok.size else None
