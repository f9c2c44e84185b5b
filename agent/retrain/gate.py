"""One check of the training-debugging checklist (:mod:`agent.retrain.gates`): a :class:`Gate`,
its figure against its threshold, with figures kept JSON-ready (``json_float``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Gate", "json_float"]


@dataclass(frozen=True, slots=True)
class Gate:
    """One check of the checklist: its figure against its threshold, and whether it passed."""

    name: str
    passed: bool
    figure: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def json_float(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _gate(name: str, passed: bool, figure: float | None, threshold: float | None, detail: str) -> Gate:
    return Gate(name, bool(passed), json_float(figure), json_float(threshold), detail)
