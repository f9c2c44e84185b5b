"""What a dataset snapshot is built from (:class:`DatasetSpec`, checked once when built), the columns
the build adds (``WEIGHT``, ``SOURCE``) and the errors that stop it; see :mod:`agent.retrain.dataset`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["Task", "WEIGHT", "SOURCE", "DatasetError", "LeakageError", "DatasetSpec"]

Task = Literal["binary", "multiclass", "regression"]

WEIGHT = "__weight__"
SOURCE = "__source__"


class DatasetError(ValueError):
    """The inputs cannot give a dataset (missing columns, too few rows, ...): the job stops."""


class LeakageError(DatasetError):
    """Train and holdout share ids or identical feature+label rows."""

    def __init__(self, message: str, ids: tuple[str, ...], rows: int) -> None:
        super().__init__(message)
        self.ids = ids     # holdout ids also in train (up to 20)
        self.rows = rows   # holdout rows identical (features + label) to a train row


def _check_real(name: str, v: Any, lo: float, hi: float, *, lo_closed: bool = False, hi_closed: bool = True) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
    if not (ok and (lo <= v if lo_closed else lo < v) and (v <= hi if hi_closed else v < hi)):
        span = f"{'[' if lo_closed else '('}{lo}, {hi}{']' if hi_closed else ')'}"
        raise ValueError(f"{name} must be in {span}, got {v!r}")


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Which columns are what, and how the snapshot is built (see the module docstring).

    ``categorical`` None: non-numeric and boolean features. ``reference_ids``: the reference's ids
    name the same entities as the traffic's (checked for leakage, suspects removed there too).
    """

    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...] | None = None
    task: Task = "binary"
    id_column: str | None = "id"
    time_column: str = "timestamp"
    prediction_column: str | None = None
    score_column: str | None = None
    window_column: str | None = "__window__"
    segments: tuple[str, ...] = ()
    stale_segments: tuple[str, ...] = ()  # the analysis' concept-drift segments: reference rows there are dropped
    exclude_ids: tuple[int | str, ...] = ()
    min_support: int = 50
    holdout_share: float = 0.2
    seed: int = 0
    clip: float = 20.0
    min_ess_share: float = 0.1
    max_domain_auc: float = 0.99
    reference_weight: float = 1.0
    weighting: bool = True
    domain_max_iter: int = 60
    reference_ids: bool = True
    check_duplicates: bool = True
    max_listed_ids: int = 1000

    def __post_init__(self) -> None:
        lists = ("features", "segments", "stale_segments", "exclude_ids") + (("categorical",) if self.categorical is not None else ())
        for name in lists:
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"task must be binary, multiclass or regression, got {self.task!r}")
        if not self.features or len(set(self.features)) != len(self.features):
            raise ValueError(f"features must be non-empty and distinct, got {self.features!r}")
        if self.categorical is not None and (extra := sorted(set(self.categorical) - set(self.features))):
            raise ValueError(f"categorical columns {extra!r} are not in features")
        others = [c for c in (self.target, self.id_column, self.time_column, self.prediction_column,
                              self.score_column, self.window_column, WEIGHT, SOURCE) if c is not None]
        if clash := sorted(set(others) & set(self.features)):
            raise ValueError(f"columns {clash!r} are features and also target/id/time/prediction/score/window")
        for name in ("min_support", "seed", "domain_max_iter", "max_listed_ids"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "domain_max_iter" else 0):
                raise ValueError(f"{name} must be an int >= {1 if name == 'domain_max_iter' else 0}, got {v!r}")
        _check_real("holdout_share", self.holdout_share, 0.0, 1.0, hi_closed=False)
        _check_real("clip", self.clip, 1.0, math.inf, lo_closed=True, hi_closed=False)
        _check_real("min_ess_share", self.min_ess_share, 0.0, 1.0, lo_closed=True)
        _check_real("max_domain_auc", self.max_domain_auc, 0.5, 1.0)
        _check_real("reference_weight", self.reference_weight, 0.0, math.inf, hi_closed=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
