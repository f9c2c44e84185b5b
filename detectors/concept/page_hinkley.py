"""Page-Hinkley: a CUSUM-type test for a change in the mean of a stream."""

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

_MODES = ("up", "down", "both")


class PageHinkley:
    """Page-Hinkley test for a shift in the mean of an error (or any real-valued) stream.

    Statistic: with ``x̄_t`` the running mean since the last reset, the faded cumulative
    deviations ``U_t = alpha * U_{t-1} + (x_t - x̄_t) - delta`` and
    ``L_t = alpha * L_{t-1} + (x_t - x̄_t) + delta``. An increase is reported when
    ``U_t - min(U) > threshold``, a decrease when ``max(L) - L_t > threshold`` (``max(L)`` starts
    at -1, as in river); ``mode`` picks which. Tests start after ``min_instances`` values.

    Assumptions: roughly independent values; ``delta`` is the size of a change that is tolerated,
    ``threshold`` (lambda) trades detection delay for false alarms and is in the units of the data.

    When it misleads: the threshold is not scale-free (rescale the stream and the false-alarm rate
    changes); the running mean has an unbounded memory, so a slow drift is absorbed into it; with
    strong autocorrelation the cumulative sums wander and fire without a change.

    Reference: E. S. Page (1954), "Continuous Inspection Schemes", Biometrika 41(1/2), 100-115.
    Detections equal ``river.drift.PageHinkley``.

    >>> import numpy as np
    >>> PageHinkley().update(np.zeros(1_000)).drift_at is None
    True
    >>> rng = np.random.default_rng(1)
    >>> stream = np.r_[rng.normal(0, 0.1, 2_000), rng.normal(1, 0.1, 500)]
    >>> verdict = PageHinkley().update(stream)
    >>> verdict.drifts[0] - 2_000 < 100
    True
    >>> verdict.drifts[0] >= 2_000
    True
    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.min_instances = check_int("min_instances", min_instances, 0)
        self.delta = check_real("delta", delta, 0.0)
        self.threshold = check_real("threshold", threshold, 0.0, low_open=True)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0, low_open=True)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (as after a drift)."""
        self._n = 0
        self._sum = 0.0  # sum of values since the reset
        self._up = 0.0  # U_t
        self._down = 0.0  # L_t
        self._up_min = math.inf
        self._down_max = -1.0

    def update(self, values: np.ndarray) -> StreamVerdict:
        """Consume a batch of values; indices in the verdict are positions in ``values``."""
        return run_stream(self, as_stream(values, binary=False))

    def _faded_sum(self, u: np.ndarray, start: float) -> np.ndarray:
        if self.alpha == 1.0:
            return start + np.cumsum(u)
        from scipy.signal import lfilter  # imported on use: scipy.signal costs ~0.5 s

        return lfilter([1.0], [1.0, -self.alpha], u, zi=[self.alpha * start])[0]

    def _scan(self, x: np.ndarray) -> tuple[int | None, int | None]:
        m = x.shape[0]
        n = self._n + np.arange(1, m + 1, dtype=np.float64)
        sums = self._sum + np.cumsum(x)
        dev = x - sums / n
        up = self._faded_sum(dev - self.delta, self._up)
        down = self._faded_sum(dev + self.delta, self._down)
        up_min = np.minimum.accumulate(np.concatenate(([self._up_min], up)))[1:]
        down_max = np.maximum.accumulate(np.concatenate(([self._down_max], down)))[1:]
        drift = np.zeros(m, dtype=bool)
        if self.mode != "down":
            drift |= up - up_min > self.threshold
        if self.mode != "up":
            drift |= down_max - down > self.threshold
        drift &= n >= self.min_instances
        at = first_true(drift)
        if at is not None:
            return at, None
        self._n += m
        self._sum = float(sums[-1])
        self._up, self._down = float(up[-1]), float(down[-1])
        self._up_min, self._down_max = float(up_min[-1]), float(down_max[-1])
        return None, None

    def state(self) -> dict[str, Any]:
        """Plain JSON-able snapshot of parameters and running state."""
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "mode": self.mode,
            "n": self._n,
            "sum": self._sum,
            "up": self._up,
            "down": self._down,
            "up_min": inf_to_none(self._up_min),
            "down_max": self._down_max,
        }

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> PageHinkley:
        """Rebuild a detector from :meth:`state` output."""
        det = cls(d["min_instances"], d["delta"], d["threshold"], d["alpha"], d["mode"])
        det._n, det._sum = int(d["n"]), float(d["sum"])
        det._up, det._down = float(d["up"]), float(d["down"])
        det._up_min = none_to(d["up_min"], math.inf)
        det._down_max = float(d["down_max"])
        return det
