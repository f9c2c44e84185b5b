"""KSWIN: Kolmogorov-Smirnov test between a sliding window's newest values and a sample of
its older values."""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.concept._common import as_stream, check_int, check_real, first_true, run_stream
from detectors.result import StreamVerdict

_MAX_EXACT = 10_000  # scipy's ks_2samp computes exact p-values up to this sample size


class KSWIN:
    """Kolmogorov-Smirnov Windowing (KSWIN) drift detector for an error or real-valued stream.

    Statistic: a sliding window of the last ``window_size`` values; its newest ``stat_size``
    values ``R`` are compared with ``stat_size`` values ``W`` drawn without replacement from the
    older part by the two-sample Kolmogorov-Smirnov statistic ``D``. A drift (then a reset) is
    reported when the exact two-sided p-value is ``<= alpha`` and ``D > 0.1``. With equal sample
    sizes the exact p-value depends only on ``D * stat_size``, so it is tabulated once with
    ``scipy.stats.ks_2samp``; ``D`` is computed for many steps at once with numpy.

    The draws use ``random.Random(seed).sample`` exactly as ``river.drift.KSWIN`` does (re-seeded
    at every reset), so with an integer ``seed`` detections equal river's. With ``seed=None`` a seed
    is drawn once from the OS (river re-draws at every reset): detections are random, as in
    river, but a ``state()`` round trip reproduces them.

    Assumptions: values within a concept are exchangeable; no distributional form is assumed.

    When it misleads: a test is made at every value on overlapping windows, so the nominal
    ``alpha`` is far from the false-alarm rate per value (keep ``alpha`` well below 0.01); on 0/1
    error streams ``D`` is just the difference of two error rates on ``stat_size`` values, which
    is coarse; small ``stat_size`` only catches large changes.

    Reference: C. Raab, M. Heusinger, F.-M. Schleif (2020), "Reactive Soft Prototype Computing
    for Concept Drift Streams", Neurocomputing 416, 340-351.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> stream = np.r_[rng.integers(0, 2, 1_000), rng.integers(4, 8, 1_000)].astype(float)
    >>> verdict = KSWIN(alpha=0.0001, seed=42).update(stream)
    >>> 1_000 <= verdict.drift_at < 1_030
    True
    """

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int | None = None,
    ) -> None:
        self.alpha = check_real("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
        self.window_size = check_int("window_size", window_size, 2)
        self.stat_size = check_int("stat_size", stat_size, 1, _MAX_EXACT)
        if self.window_size < 2 * self.stat_size:
            raise ValueError(
                f"window_size must be >= 2 * stat_size ({2 * self.stat_size}), got {window_size!r}"
            )
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.seed = seed
        # Without a seed, one is drawn once so that state() captures every later reset too
        # (river re-seeds from the OS at each reset; its detections are random either way).
        self._seed = seed if seed is not None else random.SystemRandom().getrandbits(64)
        self._fires = self._fire_table()
        self.reset()

    def _fire_table(self) -> np.ndarray:
        """fires[k]: does D = k / stat_size trigger (p-value <= alpha and D > 0.1)?"""
        from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s to import

        r = self.stat_size
        base = np.arange(r, dtype=np.float64)

        def fires(k: int) -> bool:
            with warnings.catch_warnings():  # scipy falls back to asymp with a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                res = stats.ks_2samp(base, base + k, method="auto")
            return bool(res.pvalue <= self.alpha and res.statistic > 0.1)

        if r <= 256:
            return np.array([fires(k) for k in range(r + 1)])
        lo, hi = 0, r + 1  # p-value falls with D: find the first k that fires (bisection)
        while lo < hi:
            mid = (lo + hi) // 2
            if fires(mid):
                hi = mid
            else:
                lo = mid + 1
        return np.arange(r + 1) >= lo

    def reset(self) -> None:
        """Forget everything seen so far (as after a drift); the sampler is re-seeded."""
        self._window = np.empty(0)
        self._rng = random.Random(self._seed)

    def update(self, values: np.ndarray) -> StreamVerdict:
        """Consume a batch of values; indices in the verdict are positions in ``values``."""
        return run_stream(self, as_stream(values, binary=False))

    def _scan(self, x: np.ndarray) -> tuple[int | None, int | None]:
        ws, r = self.window_size, self.stat_size
        buf = np.concatenate((self._window, x))
        held = self._window.shape[0]
        ends = np.arange(max(ws - 1, held), buf.shape[0])  # buffer index of each tested value
        if ends.size:
            population = range(ws - r)
            draws = np.array([self._rng.sample(population, r) for _ in range(ends.size)])
            starts = (ends - ws + 1)[:, None]
            older = buf[starts + draws]
            newest = buf[starts + (ws - r) + np.arange(r)]
            step = first_true(self._fires[_ks_counts(older, newest)])
            if step is not None:
                return int(ends[step]) - held, None
        self._window = buf[-(ws - 1) :].copy() if ws > 1 else np.empty(0)
        return None, None

    def state(self) -> dict[str, Any]:
        """Plain JSON-able snapshot of parameters, window and sampler state."""
        version, internal, gauss = self._rng.getstate()
        return {
            "alpha": self.alpha,
            "window_size": self.window_size,
            "stat_size": self.stat_size,
            "seed": self.seed,
            "drawn_seed": self._seed,
            "window": self._window.tolist(),
            "rng": [version, list(internal), gauss],
        }

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> KSWIN:
        """Rebuild a detector from :meth:`state` output."""
        det = cls(d["alpha"], d["window_size"], d["stat_size"], d["seed"])
        det._seed = int(d["drawn_seed"])
        det._window = np.asarray(d["window"], dtype=np.float64)
        version, internal, gauss = d["rng"]
        det._rng.setstate((int(version), tuple(int(v) for v in internal), gauss))
        return det


def _ks_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise two-sample KS statistic times the (common) sample size, as integers.

    ``max_v |#{a <= v} - #{b <= v}|`` over all values ``v`` of both rows; ties are handled by
    evaluating the counts only after the last of equal values.
    """
    vals = np.concatenate((a, b), axis=1)
    signs = np.concatenate((np.ones(a.shape, np.int64), -np.ones(b.shape, np.int64)), axis=1)
    order = np.argsort(vals, axis=1, kind="stable")
    vals = np.take_along_axis(vals, order, axis=1)
    run = np.cumsum(np.take_along_axis(signs, order, axis=1), axis=1)
    last_of_ties = np.ones(vals.shape, dtype=bool)
    last_of_ties[:, :-1] = vals[:, 1:] != vals[:, :-1]
    return np.where(last_of_ties, np.abs(run), 0).max(axis=1)
