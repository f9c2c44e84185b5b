"""Frozen result values shared by every detector.

A drift verdict has the shape of one feature entry in the ``driftwarden check`` JSON, so the
agent, the CLI and notebooks all read the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Outcome of one two-sample drift test on one feature.

    ``drifted`` is decided in one place (:func:`detectors.verdict.decide`): the test must be
    significant (after any multiple-testing correction) *and* the effect size must reach its
    floor, so a trivial shift in a huge window is not an alarm.
    """

    feature: str
    method: str  # "ks", "chi2", "psi", "js", "wasserstein", "hellinger", ...
    statistic: float
    p_value: float | None  # None for pure distances
    effect_size: float
    drifted: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping (the ``check --format json`` feature entry plus ``feature``)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    """Where a streaming (concept-drift) detector fired inside one batch.

    Indices are positions in the batch passed to ``update``; ``None`` means it did not fire.
    ``drift_at`` lists every detection in the batch in order (a detector resets after each),
    ``drift_at`` is the first; ``warning_at`` the first warning.
    """

    drift_at: int | None
    warning_at: int | None
    drifts: tuple[int, ...] = ()
