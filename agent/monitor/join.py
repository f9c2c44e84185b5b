"""The prediction-label join of one model: where each prediction's row is, and the labels that
came before their prediction."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

__all__ = ["JoinIndex"]


class JoinIndex:
    """``prediction_id`` -> window row, plus labels waiting for their prediction (bounded).

    A row is one int (``window_id << 32 | row``): no tuple per id. A waiting label expires once the
    *prediction* stream's event time has moved ``ttl_s`` past it, or when more than
    ``max_pending`` labels wait (oldest first).
    """

    __slots__ = ("ttl_s", "max_pending", "rows", "pending")

    def __init__(self, ttl_s: float = 7 * 86400.0, max_pending: int = 1_000_000) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        if max_pending < 0:
            raise ValueError(f"max_pending must be >= 0, got {max_pending}")
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.rows: dict[str, int] = {}
        self.pending: OrderedDict[str, tuple[Any, float]] = OrderedDict()  # id -> (label, event time)

    # -- predictions ---------------------------------------------------------------------
    def known(self, ids: list[str]) -> np.ndarray:
        """Which ids already have a row."""
        if self.rows.keys().isdisjoint(ids):  # the usual case, one C loop
            return np.zeros(len(ids), dtype=bool)
        return np.fromiter((pid in self.rows for pid in ids), bool, len(ids))

    def add(self, ids: list[str], window_id: int, row0: int) -> None:
        """Rows ``row0 ...`` of window ``window_id`` hold ``ids``."""
        base = (window_id << 32) + row0
        self.rows.update(zip(ids, range(base, base + len(ids))))

    def forget(self, ids: Iterable[str]) -> None:
        """A window left label retention: its ids join nothing any more."""
        rows = self.rows
        for pid in ids:
            rows.pop(pid, None)

    def take_waiting(self, ids: list[str]) -> list[tuple[int, Any, float]]:
        """``(position in ids, label, label event time)`` of the labels that were waiting for
        these predictions, removed from the waiting list (one C-level set intersection first)."""
        if not self.pending or not (waiting := self.pending.keys() & ids):
            return []
        pop = self.pending.pop
        return [(i, *pop(pid)) for i, pid in enumerate(ids) if pid in waiting]

    # -- labels --------------------------------------------------------------------------
    def locate(self, ids: list[str]) -> np.ndarray:
        """Each id's row (``window_id << 32 | row``), -1 where its prediction is not here."""
        return np.fromiter(map(self.rows.get, ids, repeat(-1)), np.int64, len(ids))

    def wait(self, pid: str, label: Any, event_s: float) -> bool:
        """Keep a label until its prediction comes; False if one already waits for that id."""
        if pid in self.pending:
            return False
        self.pending[pid] = (label, event_s)
        return True

    def expire(self, prediction_clock_s: float) -> int:
        """Drop the labels that waited too long (see the class docstring); how many."""
        horizon = prediction_clock_s - self.ttl_s
        pending = self.pending
        expired = 0
        while pending:
            _, (_, ts) = next(iter(pending.items()))
            if ts >= horizon and len(pending) <= self.max_pending:
                break
            pending.popitem(last=False)
            expired += 1
        return expired

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The waiting labels as arrays (the rows are rebuilt from the windows on restore)."""
        n = len(self.pending)
        entries = list(self.pending.values())
        ids, labels = np.empty(n, dtype=object), np.empty(n, dtype=object)
        ids[:] = list(self.pending)
        labels[:] = list(map(itemgetter(0), entries))
        return {"ids": ids, "labels": labels, "ts": np.fromiter(map(itemgetter(1), entries), float, n)}

    @classmethod
    def from_state(cls, state: dict[str, Any], windows: Iterable[Any], ttl_s: float, max_pending: int) -> JoinIndex:
        """Waiting labels from :meth:`state`; rows from the windows' stored ids."""
        out = cls(ttl_s, max_pending)
        for w in windows:
            out.add(w.rows.ids[: w.rows.n].tolist(), w.id, 0)
        out.pending = OrderedDict(zip(list(state["ids"]), zip(list(state["labels"]), np.asarray(state["ts"]).tolist())))
        return out

    def __len__(self) -> int:
        return len(self.pending)
