"""The incident store: incidents opened so far (the last ``limit``), the open ones by dedup key.

Shared by the ingest thread (checkpoints) and the HTTP threads (webhook, reads): every method
takes the store's lock. Its state is plain JSON, saved in the checkpoint beside the counters.
"""

from __future__ import annotations

import threading
from typing import Any

from agent.state.counters import Counters

__all__ = ["IncidentStore", "ALERT_KINDS"]

# The shipped Prometheus alerts (deploy/prometheus/rules.yml) and the rule kinds they concern.
ALERT_KINDS = {"DriftwardenFeatureDrift": "data_drift", "DriftwardenPerformanceDrop": "performance_drop",
               "DriftwardenDeadLetters": "data_quality", "DriftwardenPredictionTrafficDrop": "traffic_drop",
               "DriftwardenPredictionTrafficStopped": "traffic_drop", "DriftwardenLabelsMissing": "labels_missing"}


class IncidentStore:
    """Incidents, bounded to the last ``limit``; ``counters.incidents`` counts each one opened."""

    def __init__(self, counters: Counters, limit: int = 1000, rca: bool = False, rca_detail: int = 50) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.counters = counters
        self.limit = limit
        self.rca = rca  # new incidents wait for a root-cause analysis
        self.rca_detail = rca_detail  # the newest incidents keep their whole analysis; older keep causes and actions
        self._lock = threading.Lock()
        self._incidents: list[dict[str, Any]] = []
        self._open: dict[str, dict[str, Any]] = {}  # dedup key -> open incident
        self._resolved_at: dict[str, int] = {}  # a rule's key -> the window its incident resolved at
        self._streak: dict[str, tuple[int, int]] = {}  # a rule's key -> (first window, windows) not yet confirmed
        self._seq = 0
        self.version = 0  # bumped by every change the checkpoint should carry (analyses land off the ingest thread)

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"incidents": [dict(i) for i in self._incidents], "incident_seq": self._seq,
                    "incident_resolved_at": dict(self._resolved_at),
                    "incident_streaks": {k: list(v) for k, v in self._streak.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any], counters: Counters, limit: int = 1000, rca: bool = False) -> IncidentStore:
        store = cls(counters, limit, rca)
        store._incidents = [dict(i) for i in state.get("incidents", [])]
        for inc in store._incidents:  # an analysis cut short by a crash runs again
            if isinstance(inc.get("rca"), dict) and inc["rca"].get("status") == "running":
                inc["rca"] = {**inc["rca"], "status": "pending"}
        store._seq = int(state.get("incident_seq", 0))
        store._resolved_at = {k: int(v) for k, v in state.get("incident_resolved_at", {}).items()}
        store._streak = {k: (int(a), int(b)) for k, (a, b) in state.get("incident_streaks", {}).items()}
        store._open = {k: inc for inc in store._incidents if inc.get("status") == "open"
                       for k in [inc.get("key", "")] if k}
        for inc in store._incidents:  # alerts attached to an open rule incident keep pointing at it
            if inc.get("status") == "open":
                for a in inc.get("alerts", []):
                    if a.get("fingerprint"):
                        store._open[a["fingerprint"]] = inc
        return store

    # -- the Alertmanager webhook --------------------------------------------------------
    def on_alerts(self, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """Open one incident per firing alert name and model (the per-feature alerts of one rule
        are one problem, not seven); Alertmanager re-sends a group's alerts on every change and
        repeat interval, so an alert already open (same fingerprint) opens nothing new, and an
        incident resolves when the last of its alerts has."""
        opened, existing = [], []
        with self._lock:
            for a in alerts:
                key = a["fingerprint"] or "|".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
                current = self._open.get(key)
                if a["status"] == "resolved":
                    if current is not None:
                        del self._open[key]
                        # a rule's incident resolves by its own rule; an alert incident with its last alert
                        if current.get("source") != "rule" and not any(
                                v is current for k, v in self._open.items() if k != current.get("key")):
                            current["status"] = "resolved"
                            self._open.pop(current.get("key", ""), None)
                    continue
                if current is not None:
                    existing.append(current["id"])
                    continue
                model = a["labels"].get("model", "unknown")
                alertname = a["labels"].get("alertname", "")
                seen = {"alertname": alertname, "fingerprint": a["fingerprint"], "startsAt": a["startsAt"]}
                # an alert about a model and kind the agent already has open joins that incident,
                # and one whose name and model already have an alert incident joins that
                joined = (self._open.get(f"rule|{model}|{ALERT_KINDS.get(alertname, '')}")
                          or self._open.get(f"alert|{model}|{alertname}"))
                if joined is not None:
                    joined.setdefault("alerts", []).append(seen)
                    self._open[key] = joined
                    existing.append(joined["id"])
                    continue
                self._seq += 1
                group = f"alert|{model}|{alertname}"
                inc = {"id": f"inc-{self._seq}", "model": model, "kind": "alertmanager", "status": "open",
                       "alertname": alertname, "labels": a["labels"], "startsAt": a["startsAt"],
                       "fingerprint": a["fingerprint"], "key": group, "alerts": [seen]}
                if self.rca:
                    inc["rca"] = {"status": "pending"}
                self._incidents.append(inc)
                self._open[group] = self._open[key] = inc
                self.counters.incidents[(model, "alertmanager")] += 1
                opened.append(inc["id"])
            self._bound()
        return {"accepted": len(alerts), "incidents": opened, "already_open": existing}

    def _absorb_alerts(self, inc: dict[str, Any]) -> None:
        """A rule incident that opens takes over the open alert incidents of its model and kind
        (the alert often fires first): one incident per problem, the alerts attached to it."""
        merged = {id(o): o for o in self._open.values() if o is not inc and o.get("kind") == "alertmanager"
                  and o["model"] == inc["model"] and ALERT_KINDS.get(o.get("alertname", "")) == inc["kind"]}
        for other in merged.values():
            for k in [k for k, v in self._open.items() if v is other]:
                if k == other.get("key"):
                    del self._open[k]
                else:
                    self._open[k] = inc
            inc["alerts"].extend(other.get("alerts", []))
            other["status"], other["merged_into"] = "resolved", inc["id"]

    # -- the agent's own rules -------------------------------------------------------------
    def apply(self, model: str, window_id: int, findings: list[Any], judged: tuple[str, ...],
              resolve_after: int = 3, cooldown_windows: int = 5, confirm_windows: int = 1) -> list[tuple[str, str]]:
        """Turn one window's findings into incidents: a finding seen in ``confirm_windows``
        consecutive judged windows opens its model's incident of that kind (unless one is open,
        which it updates, or the kind is cooling down after a resolution), and a judged kind
        without a finding counts towards resolving the open one. Returns ``(id, kind)`` of the
        incidents opened."""
        opened: list[tuple[str, str]] = []
        with self._lock:
            found = {f.kind: f for f in findings}
            for kind in dict.fromkeys([*judged, *found]):
                key = f"rule|{model}|{kind}"
                inc = self._open.get(key)
                f = found.get(kind)
                if f is None:
                    self._streak.pop(key, None)
                if f is not None:
                    if inc is None:
                        last = self._resolved_at.get(key)
                        if last is not None and window_id < last + cooldown_windows:
                            continue
                        first, seen = self._streak.get(key, (window_id, 0))
                        self._streak[key] = (first, seen + 1)
                        if seen + 1 < confirm_windows:
                            continue
                        del self._streak[key]
                        self._seq += 1
                        inc = {"id": f"inc-{self._seq}", "model": model, "kind": kind, "severity": f.severity,
                               "status": "open", "source": "rule", "key": key, "first_window": first,
                               "last_window": window_id, "summary": f.summary, "evidence": f.evidence,
                               "clear_windows": 0, "alerts": []}
                        if self.rca:
                            inc["rca"] = {"status": "pending"}
                        self._incidents.append(inc)
                        self._open[key] = inc
                        self._absorb_alerts(inc)
                        self.counters.incidents[(model, kind)] += 1
                        opened.append((inc["id"], kind))
                    else:
                        inc["last_window"] = max(int(inc["last_window"]), window_id)
                        if f.severity == "critical":
                            inc["severity"] = "critical"
                        inc["summary"], inc["evidence"], inc["clear_windows"] = f.summary, f.evidence, 0
                elif inc is not None:
                    inc["clear_windows"] = int(inc["clear_windows"]) + 1
                    if inc["clear_windows"] >= resolve_after:
                        inc["status"] = "resolved"
                        inc["resolved_window"] = window_id
                        del self._open[key]
                        self._resolved_at[key] = window_id
            self._bound()
        return opened

    def open_by_kind(self) -> dict[tuple[str, str, str], int]:
        """Open incidents counted by (model, kind, severity)."""
        out: dict[tuple[str, str, str], int] = {}
        with self._lock:
            for inc in {id(i): i for i in self._open.values()}.values():  # alerts share their rule's
                k = (inc["model"], inc["kind"], inc.get("severity", "warning"))
                out[k] = out.get(k, 0) + 1
        return out

    # -- root-cause analyses ----------------------------------------------------------------
    def rca_due(self) -> list[dict[str, Any]]:
        """Copies of the incidents whose analysis should run now: pending ones, and open ones
        analysed without labels (once, when labels may have come since)."""
        with self._lock:
            out = []
            for inc in self._incidents:
                r = inc.get("rca")
                if not isinstance(r, dict):
                    continue
                if r.get("status") == "pending" or (r.get("status") == "done" and r.get("labels") is False
                                                    and not r.get("refreshed") and inc.get("status") == "open"):
                    out.append(dict(inc))
            return out

    def set_rca(self, incident_id: str, rca: dict[str, Any]) -> bool:
        """Store an analysis (or its status) on an incident; False when the incident is gone."""
        with self._lock:
            for inc in self._incidents:
                if inc["id"] == incident_id:
                    inc["rca"] = rca
                    self.version += 1
                    return True
        return False

    def rca_done(self) -> list[dict[str, Any]]:
        """Copies of the open incidents whose analysis is done."""
        with self._lock:
            return [dict(i) for i in self._incidents if i.get("status") == "open"
                    and isinstance(i.get("rca"), dict) and i["rca"].get("status") == "done"]

    def set_field(self, incident_id: str, key: str, value: Any) -> bool:
        """Set one top-level field of an incident (``retrain``: what its job did)."""
        if key in ("id", "model", "kind", "status", "key"):
            raise ValueError(f"{key!r} is the store's own field")
        with self._lock:
            for inc in self._incidents:
                if inc["id"] == incident_id:
                    inc[key] = value
                    self.version += 1
                    return True
        return False

    def causes_open(self) -> dict[tuple[str, str], float]:
        """(model, cause) -> the highest confidence that an open incident's analysis gives it."""
        out: dict[tuple[str, str], float] = {}
        with self._lock:
            for inc in self._incidents:
                r = inc.get("rca")
                if inc.get("status") != "open" or not isinstance(r, dict):
                    continue
                for c in r.get("causes", []) or []:
                    k = (str(inc.get("model")), str(c.get("cause")))
                    out[k] = max(out.get(k, 0.0), float(c.get("confidence", 0.0)))
        return out

    def _bound(self) -> None:
        if len(self._incidents) > self.limit:  # bounded: forget the oldest
            gone = {id(old) for old in self._incidents[:-self.limit]}
            self._open = {k: v for k, v in self._open.items() if id(v) not in gone}
            del self._incidents[:-self.limit]
        # bounded in bytes too: older analyses keep only what names the cause and the remedy
        for inc in self._incidents[:-self.rca_detail] if self.rca_detail else self._incidents:
            r = inc.get("rca")
            if isinstance(r, dict) and "evaluate" in r:
                inc["rca"] = {k: r[k] for k in ("status", "reason", "causes", "actions", "seconds", "labels") if k in r}
                for a in inc["rca"].get("actions", []):
                    for key in ("ids", "exclude_ids"):
                        if isinstance(a.get(key), list) and len(a[key]) > 20:
                            a[key] = a[key][:20]
                            a["truncated"] = True

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
