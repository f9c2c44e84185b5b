"""Runs each model's incident rules on its window judgements and files what they find."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from agent.config import ModelConfig
from agent.incidents.rules import IncidentRules, Observation
from agent.incidents.store import IncidentStore
from agent.monitor.judgement import WindowResult
from agent.monitor.model import ModelMonitor

__all__ = ["IncidentWatch"]

log = logging.getLogger(__name__)


class IncidentWatch:
    """The agent's own rules for every model, feeding one :class:`IncidentStore`. Called on the
    ingest thread with every judgement (cheap: a few comparisons per window)."""

    def __init__(self, models: Mapping[str, ModelConfig], monitors: Mapping[str, ModelMonitor],
                 store: IncidentStore) -> None:
        self.models = dict(models)
        self.monitors = dict(monitors)
        self.store = store
        self.rules = {name: IncidentRules(mon.ref, self.models[name].incidents, mon.classes)
                      for name, mon in self.monitors.items()}
        self._skew_at_close = {name: self._skew_of(name) for name in self.monitors}

    def observe(self, res: WindowResult) -> list[tuple[str, str]]:
        """Judge one window result; ``(id, kind)`` of the incidents it opened."""
        rules, mon = self.rules.get(res.model), self.monitors.get(res.model)
        if rules is None or mon is None:
            return []
        skew = {}
        if rules.judges_close(res.window_id):  # skew records since the previous window closed
            now = self._skew_of(res.model)
            before = self._skew_at_close.get(res.model, {})
            skew = {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}
            self._skew_at_close[res.model] = now
        findings, judged = rules.evaluate(res, Observation(skew, dict(mon.latest_estimate), mon.concept.detected()))
        if not judged:
            return []
        c = self.models[res.model].incidents
        opened = self.store.apply(res.model, res.window_id, findings, judged, c.resolve_after, c.cooldown_windows,
                                  c.confirm_windows)
        by_kind = {f.kind: f for f in findings}
        for inc_id, kind in opened:
            f = by_kind[kind]
            log.warning("incident %s opened: model %s, %s (%s): %s", inc_id, res.model, kind, f.severity, f.summary)
        return opened

    def state(self) -> dict[str, object]:
        return {"rules": {m: r.state() for m, r in self.rules.items()},
                "skew_at_close": {m: [[f, k, n] for (f, k), n in sorted(s.items())]
                                  for m, s in self._skew_at_close.items()}}

    def restore(self, state: dict[str, object]) -> None:
        for m, s in dict(state.get("rules", {})).items():  # type: ignore[arg-type]
            if m in self.rules:
                self.rules[m].restore(s)
        for m, rows in dict(state.get("skew_at_close", {})).items():  # type: ignore[arg-type]
            if m in self._skew_at_close:
                self._skew_at_close[m] = {(f, k): int(n) for f, k, n in rows}

    def _skew_of(self, model: str) -> dict[tuple[str, str], int]:
        counters = self.store.counters
        return {(feat, kind): n for (m, feat, kind), n in counters.skew.items() if m == model}
