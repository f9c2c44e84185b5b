"""The hot path: polled record batches -> decode/validate -> per-model monitors.

Owns no I/O: the caller (the service) polls the broker, passes batches here, and sends the
returned dead letters. That keeps the path testable in-process and benchmarkable without Kafka.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from agent.ingest.broker import RecordBatch
from agent.state.counters import Counters
from agent.decode.decoder import Decoder, Rejected
from agent.monitor.model import ModelMonitor, WindowResult

__all__ = ["DeadLetter", "Pipeline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record to send to ``<topic>.dlq`` with its reason."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass(slots=True)
class Pipeline:
    monitors: dict[str, ModelMonitor]
    counters: Counters
    predictions_topic: str
    labels_topic: str
    max_record_bytes: int = 1 << 20
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)
    on_stage: Callable[[str, float], None] | None = None
    native: bool = True  # scan records with agent.decode._scan when it is built (False: msgspec only)
    decoder: Decoder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # One decoder for every model, its routes generated from the references' features once.
        self.decoder = Decoder({name: mon.feature_spec for name, mon in self.monitors.items()},
                               self.max_record_bytes, self.native)

    def _timed(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        if self.on_stage is not None:
            self.on_stage(stage, t1 - t0)
        return t1

    def process(self, batches: list[RecordBatch]) -> tuple[list[WindowResult], list[DeadLetter]]:
        """Process one poll's batches (predictions before labels, so a label in the same poll
        as its prediction joins at once)."""
        results: list[WindowResult] = []
        dead: list[DeadLetter] = []
        order = sorted(batches, key=lambda b: b.topic != self.predictions_topic)
        for b in order:
            if not len(b):
                continue
            t0 = time.perf_counter()
            if b.topic == self.predictions_topic:
                groups, rejected = self.decoder.predictions(b.values, b.timestamps_ms)
                stream = "predictions"
            elif b.topic == self.labels_topic:
                groups, rejected = self.decoder.labels(b.values, b.timestamps_ms)
                stream = "labels"
            else:
                continue
            t0 = self._timed("decode", t0)
            dead.extend(self._reject(b, rejected, stream))
            for model, rows in groups.items():
                mon = self.monitors[model]
                try:
                    if stream == "predictions":
                        results.extend(mon.add_predictions(rows, f"{b.topic}:{b.partition}"))  # type: ignore[arg-type]
                    else:
                        results.extend(mon.add_labels(rows, f"{b.topic}:{b.partition}"))  # type: ignore[arg-type]
                except Exception as e:  # noqa: BLE001 - a record's content must never stop the agent
                    # Decoded records that still break windowing: a bug, but not one to crash-loop on.
                    # They are dead-lettered with the reason, so nothing is lost.
                    log.error("model %s: windowing %d %s raised %s: %s; the records go to the DLQ",
                              model, len(rows), stream, type(e).__name__, e, exc_info=True)
                    why = f"windowing raised {type(e).__name__}: {e}"[:300]
                    dead.extend(self._reject(b, [Rejected(int(p), why, model) for p in rows.positions], stream))
            self._timed(f"window_{stream}", t0)
        return results, dead

    def evaluate(self) -> list[WindowResult]:
        """Re-judge performance of closed windows that got labels (called on a timer, not per
        batch: recomputing segment metrics per poll would dominate the hot path)."""
        t0 = time.perf_counter()
        results = [r for mon in self.monitors.values() for r in mon.flush_performance()]
        self._timed("evaluate", t0)
        return results

    def _reject(self, b: RecordBatch, rejected: list[Rejected], stream: str) -> list[DeadLetter]:
        out = []
        for r in rejected:
            # A record whose model is unknown or unreadable is counted under model "unknown".
            model = r.model if r.model in self.monitors else "unknown"
            self.counters.events[(model, stream, "invalid")] += 1
            self.counters.dead_letters[b.topic] += 1
            out.append(DeadLetter(b.topic, b.partition, int(b.offsets[r.position]), b.keys[r.position],
                                  b.values[r.position], f"{stream} record at offset {int(b.offsets[r.position])}: {r.reason}"))
        return out
