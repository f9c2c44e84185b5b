"""Named crash points for crash-recovery tests.

``DRIFTWARDEN_CRASH_AT="checkpoint-written:3"`` makes the process SIGKILL *itself* the third
time it reaches that point. The kill is real (no cleanup, no atexit, exactly like ``kill -9``);
only its timing is chosen, to hit windows that random kills rarely hit: mid-checkpoint (temp
file written, not yet moved into place) and right after a window closed, before it was saved.
Unset in production: then every point is a no-op.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["FaultPoints", "POINTS"]

POINTS = ("window-closed", "checkpoint-written", "checkpoint-replaced", "batch-processed")


class FaultPoints:
    def __init__(self, spec: str | None) -> None:
        self._target: tuple[str, int] | None = None
        self._seen: Counter[str] = Counter()
        if spec:
            point, _, nth = spec.partition(":")
            if point not in POINTS:
                raise ValueError(f"DRIFTWARDEN_CRASH_AT: unknown point {point!r}; known: {POINTS}")
            self._target = (point, int(nth or 1))

    @classmethod
    def from_env(cls) -> FaultPoints:
        return cls(os.environ.get("DRIFTWARDEN_CRASH_AT"))

    def __call__(self, point: str) -> None:
        if self._target is None or point != self._target[0]:
            return
        self._seen[point] += 1
        if self._seen[point] == self._target[1]:
            os.kill(os.getpid(), signal.SIGKILL)
