"""Champion against challenger (:mod:`agent.retrain.gates`): both models on the same holdout rows,
the paired-bootstrap interval of the improvement, the segments, and the gate that decides."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from agent.retrain.gate import Gate, _gate, json_float
from agent.retrain.scoring import PRIMARY, BootstrapInterval, metric, metric_rows, paired_bootstrap
from agent.retrain.tabular import Task

__all__ = ["SegmentComparison", "ChampionComparison", "compare_champion", "champion_gate"]


@dataclass(frozen=True, slots=True)
class SegmentComparison:
    name: str
    rows: int
    champion: float | None
    challenger: float | None
    worse: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class ChampionComparison:
    metric: str
    higher_is_better: bool
    rows: int
    champion: float
    challenger: float
    improvement: BootstrapInterval   # challenger minus champion, signed so that > 0 is better
    segment_margin: float
    segments: tuple[SegmentComparison, ...]

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "higher_is_better": self.higher_is_better, "rows": self.rows,
                "champion": json_float(self.champion), "challenger": json_float(self.challenger),
                "improvement": self.improvement.to_dict(), "segment_margin": self.segment_margin,
                "segments": [{**asdict(s), "champion": json_float(s.champion), "challenger": json_float(s.challenger)}
                             for s in self.segments]}


def compare_champion(task: Task, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, *,
                     segments: Mapping[str, np.ndarray] | None = None, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0, segment_margin: float = 0.02,
                     min_segment_rows: int = 200) -> ChampionComparison:
    """Both models on the same holdout rows (encoded space). A segment is worse when the challenger's
    metric falls below the champion's by more than ``segment_margin`` of it (relative: AUC or
    accuracy below ``champion * (1 - m)``, RMSE above ``champion * (1 + m)``)."""
    name, higher = PRIMARY[task]
    sign = 1.0 if higher else -1.0

    def improvement(w: np.ndarray) -> np.ndarray:
        return sign * (metric_rows(task, y, challenger, w) - metric_rows(task, y, champion, w))

    interval = paired_bootstrap(improvement, len(y), n_resamples=n_resamples, confidence=confidence, seed=seed)
    rows = []
    for seg, mask in (segments or {}).items():
        mask = np.asarray(mask, dtype=bool)
        k = int(mask.sum())
        if k < min_segment_rows:
            rows.append(SegmentComparison(seg, k, None, None, False, f"skipped: {k} rows < {min_segment_rows}"))
            continue
        champ = metric(task, y[mask], champion[mask])
        chall = metric(task, y[mask], challenger[mask])
        if not (math.isfinite(champ) and math.isfinite(chall)):
            rows.append(SegmentComparison(seg, k, json_float(champ), json_float(chall), False, "skipped: metric undefined"))
            continue
        worse = chall < champ * (1 - segment_margin) if higher else chall > champ * (1 + segment_margin)
        rows.append(SegmentComparison(seg, k, champ, chall, bool(worse)))
    return ChampionComparison(name, higher, len(y), metric(task, y, champion), metric(task, y, challenger),
                              interval, segment_margin, tuple(rows))


def champion_gate(c: ChampionComparison, scale: float = 1.0) -> Gate:
    """Promote only when the interval's lower bound of the improvement is above 0 and no segment is
    worse. ``scale`` turns the displayed metric into target units (regression)."""
    worse = [s.name for s in c.segments if s.worse]
    i = c.improvement
    detail = (f"holdout {c.metric} ({c.rows} rows): challenger {c.challenger * scale:.4f} vs champion "
              f"{c.champion * scale:.4f}; improvement {i.estimate * scale:+.4f}, paired-bootstrap "
              f"{100 * i.confidence:.0f}% CI [{i.low * scale:+.4f}, {i.high * scale:+.4f}] (low > 0)")
    checked = sum(1 for s in c.segments if s.champion is not None and not s.note)
    if c.segments:
        detail += (f"; segments worse by > {100 * c.segment_margin:g}%: {worse}" if worse
                   else f"; {checked}/{len(c.segments)} segments checked, none worse by > {100 * c.segment_margin:g}%")
    return _gate("champion", i.low > 0 and not worse, i.low * scale, 0.0, detail)
