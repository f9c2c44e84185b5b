"""Frozen result values shared by every detector, and how results become plain data.

A drift verdict has the shape of one feature entry in the ``driftwarden check`` JSON, so the
agent, the CLI and notebooks all read the same thing.

Every result type in :mod:`detectors` has one ``to_dict()``: plain Python values (str, int,
float, bool, None, lists, dicts with str keys; numpy scalars become Python ones), in the order
of the fields, nothing rounded or renamed. A float may be NaN or infinite (an undefined metric, a degenerate statistic): Python's
``json`` writes those as ``NaN``/``Infinity``, orjson as ``null``. Where ``to_dict()`` keeps
everything, ``from_dict()`` is its inverse and reads either spelling (``null`` in a float field
comes back as NaN). :class:`~detectors.drift.DatasetDriftReport` is the one result whose
``to_dict()`` is a view (the ``check --format json`` document); its lossless form is
``state()`` / ``from_state()``.

>>> r = DriftResult("age", "ks", 0.21, 0.003, 0.35, True)
>>> r.to_dict()
{'feature': 'age', 'method': 'ks', 'statistic': 0.21, 'p_value': 0.003, 'effect_size': 0.35, 'drifted': True}
>>> DriftResult.from_dict(r.to_dict()) == r
True
>>> StreamVerdict.from_dict(StreamVerdict(12, 3, (12, 40)).to_dict())
StreamVerdict(drift_at=12, warning_at=3, drifts=(12, 40))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DriftResult", "StreamVerdict", "as_float", "as_optional_float"]


def as_float(value: Any) -> float:
    """A float field read back from JSON: ``None`` (orjson's NaN/infinity) becomes NaN."""
    return math.nan if value is None else float(value)


def as_optional_float(value: Any) -> float | None:
    """A float field whose ``None`` means "none" (a p-value of a pure distance)."""
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Outcome of one two-sample drift test on one feature.

    ``drifted`` is decided in one place (:func:`detectors.verdict.decide`): the test must be
    significant (after any multiple-testing correction) *and* the effect size must reach its
    floor, so a trivial shift in a huge window is not an alarm. A result straight from a
    ``compare`` that has not been through :func:`~detectors.verdict.decide` (every entry of
    ``DatasetDriftReport.scores``, the primary of :meth:`FeatureDrift.compare
    <detectors.drift.FeatureDrift.compare>`) carries ``drifted=False`` and an unadjusted p-value.

    >>> DriftResult("__label__", "chi2", 4.2, 0.04, 0.12, True).to_dict()["method"]
    'chi2'
    """

    feature: str
    method: str  # "ks", "chi2", "psi", "js", "wasserstein", "hellinger", "mmd", "domain_classifier"
    statistic: float
    p_value: float | None  # None for pure distances
    effect_size: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (the ``check --format json`` feature entry plus ``feature``)."""
        p = self.p_value
        return {"feature": self.feature, "method": self.method, "statistic": float(self.statistic),
                "p_value": None if p is None else float(p), "effect_size": float(self.effect_size),
                "drifted": bool(self.drifted)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Sequence[Any]) -> DriftResult:
        """Inverse of :meth:`to_dict`. Also reads the positional list
        ``[feature, method, statistic, p_value, effect_size, drifted]`` that agent checkpoints
        written before ``to_dict`` existed hold."""
        if isinstance(d, Mapping):
            feature, method, statistic = d["feature"], d["method"], d["statistic"]
            p_value, effect_size, drifted = d["p_value"], d["effect_size"], d["drifted"]
        else:
            if isinstance(d, (str, bytes)) or len(d) != 6:
                raise ValueError(f"a DriftResult list has 6 entries, got {len(d)}: {d!r}")
            feature, method, statistic, p_value, effect_size, drifted = d
        return cls(str(feature), str(method), as_float(statistic), as_optional_float(p_value),
                   as_float(effect_size), bool(drifted))


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    """Where a streaming (concept-drift) detector fired inside one batch.

    Indices are 0-based positions in the batch passed to ``update`` (not in the whole stream:
    add the number of values fed before to place them in the stream); ``None`` means it did not
    fire. ``drifts`` lists every detection in the batch in order (a detector resets after each,
    so later ones are relative to fresh state), ``drift_at`` is the first of them.
    ``warning_at`` is the first position in the batch where the detector was in its warning
    zone, before or after a drift (only DDM and EDDM warn; EDDM reports 0 when a warning
    carried over from an earlier batch is still on).

    >>> StreamVerdict(None, None).to_dict()
    {'drift_at': None, 'warning_at': None, 'drifts': []}
    """

    drift_at: int | None
    warning_at: int | None
    drifts: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; ``drifts`` as a list."""
        d, w = self.drift_at, self.warning_at
        return {"drift_at": None if d is None else int(d), "warning_at": None if w is None else int(w),
                "drifts": [int(i) for i in self.drifts]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StreamVerdict:
        """Inverse of :meth:`to_dict`."""
        drift_at, warning_at = d["drift_at"], d["warning_at"]
        return cls(None if drift_at is None else int(drift_at), None if warning_at is None else int(warning_at),
                   tuple(int(i) for i in d.get("drifts", ())))
