"""What :func:`agent.retrain.trainer.train` returns: the report (every gate, metrics, history,
timings, environment; its JSON form and its text summary) and the trained model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agent.retrain import gates as G
from agent.retrain.tabular import Task, TrainedModel

__all__ = ["EpochRecord", "TrainReport", "TrainResult"]


@dataclass(frozen=True, slots=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    grad_norm_mean: float
    grad_norm_max: float
    seconds: float


@dataclass(frozen=True, slots=True)
class TrainReport:
    task: Task
    gates: tuple[G.Gate, ...]
    failed_gate: str | None        # the first gate that failed, None when all passed
    healthy: bool                  # every gate before the champion comparison passed
    promote: bool                  # healthy and the champion gate passed
    rows: dict[str, int]
    metrics: dict[str, float]
    history: tuple[EpochRecord, ...]
    step_grad_norms: tuple[float, ...]
    comparison: G.ChampionComparison | None
    timings: dict[str, float]
    environment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "verdict": self.verdict, "healthy": self.healthy, "promote": self.promote,
                "failed_gate": self.failed_gate, "gates": [g.to_dict() for g in self.gates],
                "rows": self.rows, "metrics": {k: G.json_float(v) for k, v in self.metrics.items()},
                "history": [{k: G.json_float(v) if isinstance(v, float) else v for k, v in asdict(e).items()}
                            for e in self.history],
                "step_grad_norms": [G.json_float(v) for v in self.step_grad_norms],
                "comparison": None if self.comparison is None else self.comparison.to_dict(),
                "timings": self.timings, "environment": self.environment}

    @property
    def verdict(self) -> str:
        return "promote" if self.promote else ("reject" if self.healthy else "failed")

    def summary(self) -> str:
        env, m = self.environment, self.metrics
        lines = [f"training report: {self.task} model on {env['device']} ({env['precision']}), seed {env['seed']}, "
                 f"torch {env['torch']}",
                 "rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items())]
        width = max([len(g.name) for g in self.gates] + [4])
        lines.append(f"{'gate':<{width}}  result  {'figure':>10}  {'threshold':>10}  detail")
        for g in self.gates:
            fig = "-" if g.figure is None else f"{g.figure:.4g}"
            thr = "-" if g.threshold is None else f"{g.threshold:.4g}"
            lines.append(f"{g.name:<{width}}  {'PASS' if g.passed else 'FAIL':<6}  {fig:>10}  {thr:>10}  {g.detail}")
        if self.history:
            best = m.get("best_epoch")
            per_epoch = sum(e.seconds for e in self.history) / len(self.history)
            lines.append(f"training: {len(self.history)} epochs (best {best}), {per_epoch:.3f} s/epoch, "
                         f"total {self.timings.get('total', 0.0):.2f} s")
        failed = next((g for g in self.gates if not g.passed), None)
        if self.promote:
            lines.append("HEALTHY: promote the challenger")
        elif self.healthy:
            lines.append(f"HEALTHY, NOT PROMOTED (the champion stays): {failed.name if failed else 'champion'}: "
                         f"{failed.detail if failed else ''}")
        else:
            lines.append(f"FAILED at {failed.name}: {failed.detail}" if failed else "FAILED")
        return "\n".join(lines)


@dataclass(slots=True)
class TrainResult:
    model: TrainedModel | None     # None when the run stopped before training finished
    report: TrainReport
