"""EDDM: the Early Drift Detection Method of Baena-Garcia et al. on a 0/1 error stream."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.concept._common import as_stream, check_int, check_real, first_true, run_stream
from detectors.result import StreamVerdict

_EXACT_LIMIT = 2**62  # integer moments stay exact in int64 below this


class EDDM:
    """Early Drift Detection Method (EDDM) for a stream of model errors (1 = error).

    Statistic: the distances (in outcomes) between consecutive errors since the last reset, their
    mean ``p'`` and sample standard deviation ``s'``. Once more than ``warm_start`` outcomes were
    seen, the largest ``p' + 2 s'`` is remembered; after more than ``warm_start`` errors the ratio
    ``(p' + 2 s') / max(p' + 2 s')`` below ``beta`` is a drift (then a reset), below ``alpha`` a
    warning. The test runs only when an error arrives, so the warning state persists between
    errors.

    Assumptions: errors are independent; a concept change shortens the distance between errors.
    It reacts earlier than :class:`DDM` to gradual drift.

    When it misleads: with a high, stable error rate the distances are short and noisy and the
    defaults (0.95 / 0.9) raise frequent false alarms; a stream without errors is never tested.

    Reference: M. Baena-Garcia, J. del Campo-Avila, R. Fidalgo, A. Bifet, R. Gavalda,
    R. Morales-Bueno (2006), "Early Drift Detection Method", 4th Int. Workshop on Knowledge
    Discovery from Data Streams. Detections equal ``river.drift.binary.EDDM``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> errors = np.r_[rng.random(3_000) < 0.05, rng.random(3_000) < 0.4].astype(float)
    >>> verdict = EDDM(alpha=0.8, beta=0.75).update(errors)
    >>> any(3_000 <= i < 3_100 for i in verdict.drifts)
    True
    """

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        self.warm_start = check_int("warm_start", warm_start, 0)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0, low_open=True)
        self.beta = check_real("beta", beta, 0.0, 1.0, low_open=True)
        if self.alpha < self.beta:
            raise ValueError(f"alpha must be >= beta ({self.beta!r}), got {alpha!r}")
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (as after a drift)."""
        self._n = 0  # outcomes since the reset
        self._last_error = 0  # outcome count at the last error (0: none yet)
        self._n_errors = 0
        self._dist_sum = 0  # sum of distances between errors
        self._dist_sq = 0  # sum of squared distances
        self._p2s_max = -1.0
        self._warning = False

    def update(self, values: np.ndarray) -> StreamVerdict:
        """Consume a batch of 0/1 outcomes; indices in the verdict are positions in ``values``."""
        return run_stream(self, as_stream(values, binary=True))

    def _scan(self, x: np.ndarray) -> tuple[int | None, int | None]:
        m = x.shape[0]
        pos = np.flatnonzero(x == 1.0)
        if pos.size == 0:
            self._n += m
            return None, (0 if self._warning else None)
        at_n = self._n + pos.astype(np.int64) + 1  # outcome count at each error
        dist = np.diff(at_n, prepend=self._last_error)
        c = self._n_errors + np.arange(1, pos.size + 1, dtype=np.int64)
        s1 = self._dist_sum + np.cumsum(dist)
        s2 = self._dist_sq + np.cumsum(dist * dist)
        mean = s1 / c
        if float(s2[-1]) * float(c[-1]) < _EXACT_LIMIT:
            var = (c * s2 - s1 * s1) / np.maximum(c * (c - 1), 1)  # exact integer numerator
        else:
            var = np.maximum(s2 - s1 * mean, 0.0) / np.maximum(c - 1, 1)
        var = np.where(c > 1, var, 0.0)
        p2s = mean + 2.0 * np.sqrt(var)
        eligible = at_n > self.warm_start
        run_max = np.maximum.accumulate(
            np.concatenate(([self._p2s_max], np.where(eligible, p2s, -math.inf)))
        )
        prev_max = run_max[:-1]
        tested = eligible & ~(p2s > prev_max) & (c > self.warm_start)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = p2s / prev_max
        drift = tested & (level < self.beta)
        set_on = tested & ~drift & (level < self.alpha)
        set_off = tested & ~drift & ~(level < self.alpha)
        assigned = set_on | set_off
        last = np.maximum.accumulate(np.where(assigned, np.arange(pos.size), -1))
        flag = np.where(last >= 0, set_on[np.maximum(last, 0)], self._warning)
        at = first_true(drift)
        k = pos.size if at is None else at + 1
        if self._warning and pos[0] > 0:  # still warning before the first error
            warn = 0
        else:
            j = first_true(flag[:k])
            warn = None if j is None else int(pos[j])
        if at is not None:
            return int(pos[at]), warn
        self._n += m
        self._last_error = int(at_n[-1])
        self._n_errors = int(c[-1])
        self._dist_sum, self._dist_sq = int(s1[-1]), int(s2[-1])
        self._p2s_max = float(run_max[-1])
        self._warning = bool(flag[-1])
        return None, warn

    def state(self) -> dict[str, Any]:
        """Plain JSON-able snapshot of parameters and running state."""
        return {
            "warm_start": self.warm_start,
            "alpha": self.alpha,
            "beta": self.beta,
            "n": self._n,
            "last_error": self._last_error,
            "n_errors": self._n_errors,
            "dist_sum": self._dist_sum,
            "dist_sq": self._dist_sq,
            "p2s_max": self._p2s_max,
            "warning": self._warning,
        }

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> EDDM:
        """Rebuild a detector from :meth:`state` output."""
        det = cls(d["warm_start"], d["alpha"], d["beta"])
        det._n, det._last_error = int(d["n"]), int(d["last_error"])
        det._n_errors = int(d["n_errors"])
        det._dist_sum, det._dist_sq = int(d["dist_sum"]), int(d["dist_sq"])
        det._p2s_max = float(d["p2s_max"])
        det._warning = bool(d["warning"])
        return det
