"""Fuzz the exact KS + Wasserstein-1 kernel (detectors/_ecdf.c) and
detectors.univariate.ks_wasserstein_samples against scipy.

Input (read by tests/fuzz/_provider.py's Provider): a config byte, then the sizes of a
reference and a window (1..48 values each; config bit 3: a reference of up to 400 values, so
that ks_wasserstein_samples leaves the C merge past its 64x size ratio) and their values: repeats of earlier values, ties,
extremes (+-1e300, subnormals, +-0.0), small integers, arbitrary finite doubles (|x| <= 1e300,
so every difference of two values is finite). Config bits add NaNs to the raw arrays (bit 0)
and pick the reference form (bit 1: an array, else a SortedReference); bit 2 adds a
non-contiguous array.

Checked on every input:
* ks_w1(sorted r, sorted w) == (scipy.stats.ks_2samp(r, w).statistic within 1e-12,
  scipy.stats.wasserstein_distance(r, w) within a relative 1e-9 plus a rounding allowance
  proportional to the data's span);
* ks_wasserstein_samples(raw reference, raw window, merge=True and merge=False) == the same
  oracles on the NaN-free values, p-value equal to ks_2samp's;
* ks_w1 refuses, with ValueError, unsorted input, a NaN, an empty array; TypeError for a
  non-float64 array; no crash on a non-contiguous one.

Run: scripts/fuzz.sh, or ``python3 tests/fuzz/fuzz_ecdf.py tests/fuzz/corpus/fuzz_ecdf``.
"""

from __future__ import annotations

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import _common  # noqa: E402
from _provider import Provider  # noqa: E402

with _common.instrumented(__name__ == "__main__"):
    from detectors import _ecdf
    from detectors.univariate import SortedReference, ks_wasserstein_samples

MAX_N = 48
LONG_N = 400
LIMIT = 1e300
EXTREMES = (1e300, -1e300, 1e-300, -1e-300, 5e-324, -5e-324, 2.2250738585072014e-308, 0.0, -0.0, 1.0, -1.0,
            0.1, 1e15, 1e16 + 1, 9007199254740993.0, 123456.789)
EPS = np.finfo(float).eps


def _value(p: Provider, sample: list[float]) -> float:
    kind = p.ConsumeIntInRange(0, 7)
    if kind <= 1 and sample:  # ties: a value seen before
        return p.PickValueInList(sample)
    if kind == 2:
        return p.PickValueInList(EXTREMES)
    if kind == 3:
        return float(p.ConsumeIntInRange(-3, 3))
    if kind == 4:
        x = p.ConsumeFloat()
        return x if math.isfinite(x) and abs(x) <= LIMIT else p.PickValueInList(EXTREMES)
    if kind == 5:  # a neighbour of a value seen before (nextafter up or down)
        base = p.PickValueInList(sample) if sample else 0.0
        return float(np.nextafter(base, p.PickValueInList((math.inf, -math.inf))))
    return p.ConsumeIntInRange(-(2**20), 2**20) / 1024.0


def _sample(p: Provider, others: list[float], max_n: int = MAX_N) -> list[float]:
    out: list[float] = []
    for _ in range(p.ConsumeIntInRange(1, max_n)):
        out.append(_value(p, out + others if p.ConsumeBool() else out))
    return out


def _close_w1(got: float, want: float, r: np.ndarray, w: np.ndarray, where: str) -> None:
    span = float(max(r[-1], w[-1]) - min(r[0], w[0]))
    # scipy sums |F_r - F_w| * gap over the pooled values; the kernels sum the same terms in
    # another order, or (the numpy route) a signed integral: each rounding costs up to an
    # ulp of a term as large as the span, and (subnormal data) half the smallest subnormal
    n = r.size + w.size
    tol = 1e-9 * abs(want) + 8 * EPS * span * n + 5e-324 * n
    assert math.isfinite(got) and abs(got - want) <= tol, (where, "W1", got, want, got - want, tol, r, w)


def _raises(fn: object, exc: type[BaseException] | tuple[type[BaseException], ...], *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except exc:
        return
    raise AssertionError(("no error", fn, args))


def TestOneInput(data: bytes) -> None:
    p = Provider(data)
    config = p.byte()
    ref = _sample(p, [], MAX_N if not config & 8 else LONG_N)  # long: past the merge's 64x ratio
    win = _sample(p, ref)
    r, w = np.sort(np.array(ref)), np.sort(np.array(win))

    want_d = float(stats.ks_2samp(r, w).statistic)
    want_w = float(stats.wasserstein_distance(r, w))
    d, w1 = _ecdf.ks_w1(r, w)
    assert abs(d - want_d) <= 1e-12, ("ks_w1 D", d, want_d, r, w)
    _close_w1(w1, want_w, r, w, "ks_w1")

    raw_r, raw_w = np.array(ref), np.array(win)
    if config & 1:  # NaNs the function must drop
        raw_r = np.insert(raw_r, p.ConsumeIntInRange(0, raw_r.size), np.nan)
        raw_w = np.insert(raw_w, p.ConsumeIntInRange(0, raw_w.size), [np.nan] * p.ConsumeIntInRange(1, 3))
    reference = raw_r if config & 2 else SortedReference().fit(raw_r)
    want_p = float(stats.ks_2samp(r, w).pvalue)
    for merge in (True, False):
        where = f"ks_wasserstein_samples(merge={merge})"
        d2, pv, w2 = ks_wasserstein_samples(reference, raw_w, merge=merge)
        assert abs(d2 - want_d) <= 1e-12, (where, "D", d2, want_d, r, w)
        assert pv == want_p or abs(pv - want_p) <= 1e-12, (where, "p", pv, want_p)
        _close_w1(w2, want_w, r, w, where)

    # the kernel's refusals: a wrong input is an error, never a crash or a wrong number
    if np.any(np.diff(raw_r) < 0) and not np.isnan(raw_r).any():
        _raises(_ecdf.ks_w1, ValueError, raw_r, w)
        _raises(_ecdf.ks_w1, ValueError, w, raw_r)
    bad = r.copy()
    bad[p.ConsumeIntInRange(0, bad.size - 1)] = np.nan
    _raises(_ecdf.ks_w1, ValueError, bad, w)
    _raises(_ecdf.ks_w1, ValueError, w, bad)
    _raises(_ecdf.ks_w1, ValueError, r, np.empty(0))
    _raises(_ecdf.ks_w1, TypeError, np.zeros(r.size, dtype=np.float32), w)
    if config & 4 and r.size > 1:
        try:
            _ecdf.ks_w1(r[::2], w)  # not contiguous: refused by the buffer protocol, or read right
        except (ValueError, TypeError, BufferError):
            pass


if __name__ == "__main__":
    import atheris

    _common.check_extensions(_ecdf)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
