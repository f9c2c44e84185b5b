"""The incident store: incidents opened so far (the last ``limit``), the open ones by dedup key.

Shared by the ingest thread (checkpoints) and the HTTP threads (webhook, reads): every method
takes the store's lock. Its state is plain JSON, saved in the checkpoint beside the counters.
"""

from __future__ import annotations

import threading
from typing import Any

from agent.state.counters import Counters

__all__ = ["IncidentStore"]


class IncidentStore:
    """Incidents, bounded to the last ``limit``; ``counters.incidents`` counts each one opened."""

    def __init__(self, counters: Counters, limit: int = 1000) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.counters = counters
        self.limit = limit
        self._lock = threading.Lock()
        self._incidents: list[dict[str, Any]] = []
        self._open: dict[str, dict[str, Any]] = {}  # dedup key -> open incident
        self._seq = 0

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"incidents": [dict(i) for i in self._incidents], "incident_seq": self._seq}

    @classmethod
    def from_state(cls, state: dict[str, Any], counters: Counters, limit: int = 1000) -> IncidentStore:
        store = cls(counters, limit)
        store._incidents = [dict(i) for i in state.get("incidents", [])]
        store._seq = int(state.get("incident_seq", 0))
        store._open = {k: inc for inc in store._incidents if inc.get("status") == "open"
                       for k in [inc.get("key", "")] if k}
        return store

    # -- the Alertmanager webhook --------------------------------------------------------
    def on_alerts(self, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """Open one incident per firing alert; Alertmanager re-sends a group's alerts on every
        change and repeat interval, so an alert already open (same fingerprint) opens nothing new,
        and a resolved one closes its incident."""
        opened, existing = [], []
        with self._lock:
            for a in alerts:
                key = a["fingerprint"] or "|".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
                current = self._open.get(key)
                if a["status"] == "resolved":
                    if current is not None:
                        current["status"] = "resolved"
                        del self._open[key]
                    continue
                if current is not None:
                    existing.append(current["id"])
                    continue
                model = a["labels"].get("model", "unknown")
                self._seq += 1
                inc = {"id": f"inc-{self._seq}", "model": model, "kind": "alertmanager", "status": "open",
                       "alertname": a["labels"].get("alertname", ""), "labels": a["labels"], "startsAt": a["startsAt"],
                       "fingerprint": a["fingerprint"], "key": key}
                self._incidents.append(inc)
                self._open[key] = inc
                self.counters.incidents[(model, "alertmanager")] += 1
                opened.append(inc["id"])
            if len(self._incidents) > self.limit:  # bounded: forget the oldest
                gone = {id(old) for old in self._incidents[:-self.limit]}
                self._open = {k: v for k, v in self._open.items() if id(v) not in gone}
                del self._incidents[:-self.limit]
        return {"accepted": len(alerts), "incidents": opened, "already_open": existing}

    # -- reads ---------------------------------------------------------------------------
    def get(self, rest: str) -> tuple[int, Any]:
        """``GET /incidents`` (``rest`` empty) or ``GET /incidents/{id}``: status and body."""
        with self._lock:
            if not rest:
                return 200, [dict(i) for i in self._incidents]
            for inc in self._incidents:
                if inc["id"] == rest:
                    return 200, dict(inc)
        return 404, {"error": f"no incident {rest!r}"}

    def __len__(self) -> int:
        with self._lock:
            return len(self._incidents)
