"""DDM: the Drift Detection Method of Gama et al. on a 0/1 error stream."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.concept._common import (
    as_stream,
    check_int,
    check_real,
    first_true,
    inf_to_none,
    none_to,
    run_stream,
)
from detectors.result import StreamVerdict


class DDM:
    """Drift Detection Method (DDM) for a stream of model errors (1 = error, 0 = correct).

    Statistic: the running error rate ``p_i`` since the last reset and its binomial standard
    deviation ``s_i = sqrt(p_i (1 - p_i) / i)``. Once more than ``warm_start`` outcomes were seen,
    the point where ``p_i + s_i`` is smallest is remembered as ``(p_min, s_min)``; a warning is
    raised while ``p_i + s_i > p_min + warning_threshold * s_min`` and a drift (followed by a
    reset) when ``p_i + s_i > p_min + drift_threshold * s_min``.

    Assumptions: errors are independent Bernoulli draws and the error rate of a learner that
    fits a stationary concept does not go up. It only looks for *increases* of the error rate.

    When it misleads: a drop in the error rate is never reported; after a very long stable run
    ``s_i`` shrinks and the test reacts slowly to a change (the running mean has a long memory);
    with an error rate of exactly 0 since the reset (``s_min = 0``), the first error is a drift.

    Reference: J. Gama, P. Medas, G. Castillo, P. Rodrigues (2004), "Learning with Drift
    Detection", SBIA 2004, LNCS 3171, 286-295. Detections equal ``river.drift.binary.DDM``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.random(2_000) < 0.1, rng.random(2_000) < 0.5].astype(float)
    >>> verdict = DDM().update(errors)
    >>> verdict.drift_at is not None and verdict.drift_at > 2_000
    True
    """

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        self.warm_start = check_int("warm_start", warm_start, 0)
        self.warning_threshold = check_real(
            "warning_threshold", warning_threshold, 0.0, low_open=True
        )
        self.drift_threshold = check_real("drift_threshold", drift_threshold, 0.0, low_open=True)
        if self.drift_threshold < self.warning_threshold:
            raise ValueError(
                f"drift_threshold must be >= warning_threshold ({self.warning_threshold!r}), "
                f"got {drift_threshold!r}"
            )
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (as after a drift)."""
        self._n = 0  # outcomes since the reset
        self._errors = 0  # errors since the reset
        self._p_min = math.nan
        self._s_min = math.nan
        self._ps_min = math.inf

    def update(self, values: np.ndarray) -> StreamVerdict:
        """Consume a batch of 0/1 outcomes; indices in the verdict are positions in ``values``."""
        return run_stream(self, as_stream(values, binary=True))

    def _scan(self, x: np.ndarray) -> tuple[int | None, int | None]:
        m = x.shape[0]
        n = self._n + np.arange(1, m + 1, dtype=np.float64)
        p = (self._errors + np.cumsum(x)) / n  # exact integer counts, one rounding
        s = np.sqrt(p * (1.0 - p) / n)
        ps = p + s
        warm = n > self.warm_start
        ps_w = np.where(warm, ps, math.inf)
        run_min = np.minimum.accumulate(np.concatenate(([self._ps_min], ps_w)))
        record = warm & (ps_w <= run_min[:-1])  # river keeps the latest point on ties
        last = np.maximum.accumulate(np.where(record, np.arange(m), -1))
        seen = last >= 0
        p_min = np.where(seen, p[last], self._p_min)
        s_min = np.where(seen, s[last], self._s_min)
        drift = warm & (ps > p_min + self.drift_threshold * s_min)
        warning = warm & (ps > p_min + self.warning_threshold * s_min) & ~drift
        at = first_true(drift)
        if at is not None:
            return at, first_true(warning[: at + 1])
        self._n += m
        self._errors += int(x.sum())
        self._ps_min = float(run_min[-1])
        if seen[-1]:
            self._p_min, self._s_min = float(p[last[-1]]), float(s[last[-1]])
        return None, first_true(warning)

    def state(self) -> dict[str, Any]:
        """Plain JSON-able snapshot of parameters and running state."""
        return {
            "warm_start": self.warm_start,
            "warning_threshold": self.warning_threshold,
            "drift_threshold": self.drift_threshold,
            "n": self._n,
            "errors": self._errors,
            "p_min": None if math.isnan(self._p_min) else self._p_min,
            "s_min": None if math.isnan(self._s_min) else self._s_min,
            "ps_min": inf_to_none(self._ps_min),
        }

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> DDM:
        """Rebuild a detector from :meth:`state` output."""
        det = cls(d["warm_start"], d["warning_threshold"], d["drift_threshold"])
        det._n, det._errors = int(d["n"]), int(d["errors"])
        det._p_min = none_to(d["p_min"], math.nan)
        det._s_min = none_to(d["s_min"], math.nan)
        det._ps_min = none_to(d["ps_min"], math.inf)
        return det
