"""Monotonic counts the agent exports, kept in checkpointed state so they never reset on restart."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Counters", "LABEL_DELAY_BUCKETS"]

# Label delay histogram buckets (seconds): a minute to a month.
LABEL_DELAY_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0, 30 * 86400.0)


@dataclass(slots=True)
class Counters:
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # model, stream, outcome
    schema: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # model, feature, kind
    skew: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # model, feature, kind
    windows: Counter[str] = field(default_factory=Counter)
    unlabelled: Counter[str] = field(default_factory=Counter)
    incidents: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)  # source topic
    label_delay: dict[str, np.ndarray] = field(default_factory=dict)  # model -> bucket counts (+Inf last)
    label_delay_sum: Counter[str] = field(default_factory=Counter)  # integer milliseconds
    window_failures: Counter[str] = field(default_factory=Counter)  # model: judgements that raised

    def observe_label_delay(self, model: str, delays_s: np.ndarray) -> None:
        if delays_s.size == 0:
            return
        idx = np.searchsorted(LABEL_DELAY_BUCKETS, delays_s, side="left")
        counts = np.bincount(idx, minlength=len(LABEL_DELAY_BUCKETS) + 1)
        cur = self.label_delay.get(model)
        self.label_delay[model] = counts if cur is None else cur + counts
        # Whole milliseconds: an integer sum does not depend on how records were batched, so a
        # restarted agent exports exactly the value an uninterrupted one does.
        self.label_delay_sum[model] += int(np.rint(delays_s * 1000.0).astype(np.int64).sum())

    def copy(self) -> Counters:
        return Counters(
            Counter(self.events), Counter(self.schema), Counter(self.skew), Counter(self.windows),
            Counter(self.unlabelled), Counter(self.incidents), Counter(self.dead_letters),
            {k: v.copy() for k, v in self.label_delay.items()}, Counter(self.label_delay_sum),
            Counter(self.window_failures),
        )

    def state(self) -> dict[str, Any]:
        def rows(c: Counter) -> list[list[Any]]:
            return [[*(k if isinstance(k, tuple) else (k,)), v] for k, v in sorted(c.items())]

        return {
            "events": rows(self.events), "schema": rows(self.schema), "skew": rows(self.skew),
            "windows": rows(self.windows), "unlabelled": rows(self.unlabelled), "incidents": rows(self.incidents),
            "dead_letters": rows(self.dead_letters),
            "label_delay": {k: v.tolist() for k, v in self.label_delay.items()},
            "label_delay_sum": dict(self.label_delay_sum),
            "window_failures": rows(self.window_failures),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Counters:
        def tup(rows: list[list[Any]]) -> Counter:
            return Counter({tuple(r[:-1]): r[-1] for r in rows})

        def one(rows: list[list[Any]]) -> Counter:
            return Counter({r[0]: r[1] for r in rows})

        return cls(
            tup(s["events"]), tup(s["schema"]), tup(s["skew"]), one(s["windows"]), one(s["unlabelled"]),
            tup(s["incidents"]), one(s["dead_letters"]),
            {k: np.asarray(v, dtype=np.int64) for k, v in s["label_delay"].items()},
            Counter(s["label_delay_sum"]), one(s.get("window_failures", [])),
        )
