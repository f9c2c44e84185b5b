"""Reading a running agent's /metrics in tests."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Mapping

from prometheus_client.parser import text_string_to_metric_families

EventCounts = dict[tuple[str, str, str], float]


def _samples(port: int) -> list | None:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return [s for fam in text_string_to_metric_families(body) for s in fam.samples]


def event_counts(port: int) -> EventCounts | None:
    """``driftwarden_events_total`` as ``{(model, stream, outcome): value}`` plus
    ``driftwarden_windows_total`` as ``{(model, "windows", ""): value}``; None if unreachable."""
    samples = _samples(port)
    if samples is None:
        return None
    out: EventCounts = {}
    for s in samples:
        if s.name == "driftwarden_events_total":
            out[(s.labels["model"], s.labels["stream"], s.labels["outcome"])] = s.value
        elif s.name == "driftwarden_windows_total":
            out[(s.labels["model"], "windows", "")] = s.value
    return out


def taken_in(port: int) -> dict[str, float] | None:
    """Records of each stream the agent has taken in, from one scrape: every outcome of
    ``driftwarden_events_total`` (every model, "unknown" included) plus, for labels, those waiting
    in the join for their prediction (``driftwarden_join_pending_labels``). For topics of one
    partition starting at offset 0 this is the consumer's position. None if unreachable."""
    samples = _samples(port)
    if samples is None:
        return None
    out = {"predictions": 0.0, "labels": 0.0}
    for s in samples:
        if s.name == "driftwarden_events_total":
            out[s.labels["stream"]] = out.get(s.labels["stream"], 0.0) + s.value
        elif s.name == "driftwarden_join_pending_labels":
            out["labels"] += s.value
    return out


def wait_taken_in(port: int, ends: Mapping[str, int], timeout_s: float = 60,
                  alive: Callable[[], bool] | None = None,
                  context: Callable[[], str] | None = None) -> dict[str, float]:
    """Poll /metrics until the agent has taken in ``ends[stream]`` records of each stream: its
    position reached the topics' end offsets (see tests.support.kafka.end_offsets), so nothing more
    is there for it to read. Returns that scrape's :func:`taken_in`; AssertionError after
    ``timeout_s``, or as soon as ``alive()`` is false, with the counts and ``context()``."""
    deadline = time.monotonic() + timeout_s
    got: dict[str, float] | None = None
    while True:
        got = taken_in(port)
        if got is not None and all(got.get(s, 0.0) >= n for s, n in ends.items()):
            return got
        why = ("the agent stopped" if alive is not None and not alive()
               else f"timed out after {timeout_s}s" if time.monotonic() >= deadline else None)
        if why:
            raise AssertionError(f"{why} before its position reached the topics' ends: took in {got} "
                                 f"of {dict(ends)} records\n{context() if context else ''}")
        time.sleep(0.1)
