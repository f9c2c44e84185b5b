"""Reading a running agent's /metrics in tests."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

EventCounts = dict[tuple[str, str, str], float]


def event_counts(port: int) -> EventCounts | None:
    """``driftwarden_events_total`` as ``{(model, stream, outcome): value}`` plus
    ``driftwarden_windows_total`` as ``{(model, "windows", ""): value}``; None if unreachable."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    out: EventCounts = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == "driftwarden_events_total":
                out[(s.labels["model"], s.labels["stream"], s.labels["outcome"])] = s.value
            elif s.name == "driftwarden_windows_total":
                out[(s.labels["model"], "windows", "")] = s.value
    return out
