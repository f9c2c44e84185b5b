"""Event time of one stream, as a model's monitor sees it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventClock"]


@dataclass(slots=True)
class EventClock:
    """The low watermark of a stream's event time: the smallest of its partitions' largest event
    times. A partition consumed ahead of the others therefore closes no window and expires no
    label early. Written in one place (:meth:`observe`); ``now`` is -inf until a record is seen.

    >>> c = EventClock()
    >>> c.observe("p:0", 100.0), c.observe("p:1", 50.0), c.observe("p:0", 120.0)
    (100.0, 50.0, 50.0)
    """

    sources: dict[str, float] = field(default_factory=dict)  # "topic:partition" -> max event time seen
    now: float = -math.inf

    def observe(self, source: str, latest: float) -> float:
        """Note ``latest``, the largest event time of a batch from ``source``; the new watermark."""
        self.sources[source] = max(self.sources.get(source, -math.inf), latest)
        self.now = min(self.sources.values())
        return self.now

    def state(self) -> dict[str, Any]:
        return {"now": self.now, "sources": dict(self.sources)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EventClock:
        def num(x: float | None) -> float:  # JSON has no infinity: -inf is written as null
            return -math.inf if x is None else float(x)

        return cls({k: num(v) for k, v in state["sources"].items()}, num(state["now"]))
