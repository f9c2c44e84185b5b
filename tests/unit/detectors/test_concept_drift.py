"""Concept-drift detectors against river's implementations, batch by batch and across state
round trips."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.concept import ADWIN, DDM, EDDM, KSWIN, PageHinkley

import river.drift as river_drift  # noqa: E402  (a test dependency: no skip)
import river.drift.binary as river_binary  # noqa: E402


# --- streams with known change points -------------------------------------------------------


def _bernoulli_abrupt(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cut = n // 2
    return np.r_[rng.random(cut) < 0.1, rng.random(n - cut) < 0.35].astype(float)


def _bernoulli_gradual(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.clip(0.05 + 0.3 * (np.arange(n) - n / 3) / (n / 3), 0.05, 0.35)
    return (rng.random(n) < p).astype(float)


def _real_abrupt(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cut = n // 2
    return np.r_[rng.normal(0.0, 1.0, cut), rng.normal(1.0, 1.5, n - cut)]


def _real_gradual(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.clip((np.arange(n) - n / 3) / (n / 3), 0.0, 1.0)
    return np.round(rng.normal(2.0 * ramp, 1.0), 2)  # rounding adds ties (KS must cope)


BINARY = {"bin-abrupt": _bernoulli_abrupt, "bin-gradual": _bernoulli_gradual}
REAL = {"real-abrupt": _real_abrupt, "real-gradual": _real_gradual}


@functools.cache
def stream(kind: str, seed: int, n: int) -> np.ndarray:
    x = {**BINARY, **REAL}[kind](seed, n)
    x.setflags(write=False)
    return x


# --- detectors and their river peers --------------------------------------------------------

# (id, ours, river's, params, binary-only, stream length)
CASES = [
    ("ddm", DDM, river_binary.DDM, {}, True, 6_000),
    ("ddm-tight", DDM, river_binary.DDM, {"warm_start": 5, "warning_threshold": 1.5,
                                          "drift_threshold": 2.0}, True, 6_000),
    ("eddm", EDDM, river_binary.EDDM, {}, True, 6_000),
    ("eddm-loose", EDDM, river_binary.EDDM, {"warm_start": 10, "alpha": 0.8, "beta": 0.7},
     True, 6_000),
    ("adwin", ADWIN, river_drift.ADWIN, {}, False, 6_000),
    ("adwin-clock1", ADWIN, river_drift.ADWIN, {"delta": 0.05, "clock": 1, "max_buckets": 3,
                                                "min_window_length": 2, "grace_period": 0},
     False, 4_000),
    ("ph", PageHinkley, river_drift.PageHinkley, {}, False, 6_000),
    ("ph-up", PageHinkley, river_drift.PageHinkley, {"threshold": 15.0, "mode": "up",
                                                      "min_instances": 5}, False, 6_000),
    ("ph-down-nofade", PageHinkley, river_drift.PageHinkley, {"alpha": 1.0, "threshold": 25.0,
                                                              "mode": "down"}, False, 6_000),
    ("kswin", KSWIN, river_drift.KSWIN, {"seed": 1}, False, 1_200),
    ("kswin-small", KSWIN, river_drift.KSWIN, {"alpha": 0.01, "window_size": 60,
                                               "stat_size": 20, "seed": 7}, False, 1_200),
]
SEEDS = (0, 1, 2)


def _streams_for(binary: bool) -> list[str]:
    return list(BINARY) if binary else [*BINARY, *REAL]


def _params():
    for cid, ours, theirs, kw, binary, n in CASES:
        for kind in _streams_for(binary):
            for seed in SEEDS:
                yield pytest.param(cid, kind, seed, id=f"{cid}-{kind}-{seed}")


CASE = {c[0]: c for c in CASES}


@functools.cache
def river_reference(cid: str, kind: str, seed: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Drift indices and the per-step warning flag from river, one value at a time."""
    _, _, theirs, kw, binary, n = CASE[cid]
    det = theirs(**kw)
    x = stream(kind, seed, n)
    drifts, warn = [], np.zeros(n, dtype=bool)
    cast = int if binary else float
    for i, v in enumerate(x.tolist()):
        det.update(cast(v))
        if det.drift_detected:
            drifts.append(i)
        warn[i] = bool(getattr(det, "warning_detected", False))
    return tuple(drifts), warn


def _feed(det, x: np.ndarray, sizes) -> tuple[list[int], list[tuple[int, int | None]]]:
    """Feed ``x`` in batches of ``sizes`` (cycled); global drift indices and per-batch warnings."""
    drifts, warnings = [], []
    pos, k = 0, 0
    while pos < len(x):
        size = sizes[k % len(sizes)]
        verdict = det.update(x[pos : pos + size])
        assert verdict.drift_at == (verdict.drifts[0] if verdict.drifts else None)
        drifts += [pos + i for i in verdict.drifts]
        warnings.append((pos, None if verdict.warning_at is None else pos + verdict.warning_at))
        pos, k = pos + size, k + 1
    return drifts, warnings


def _check_warnings(warnings, river_warn: np.ndarray, sizes) -> None:
    pos_list = [p for p, _ in warnings]
    for j, (pos, got) in enumerate(warnings):
        end = pos_list[j + 1] if j + 1 < len(pos_list) else len(river_warn)
        hits = np.flatnonzero(river_warn[pos:end])
        assert got == (pos + int(hits[0]) if hits.size else None), (pos, sizes)


@pytest.mark.parametrize(("cid", "kind", "seed"), list(_params()))
def test_one_batch_matches_river(cid, kind, seed):
    _, ours, _, kw, _, n = CASE[cid]
    expected, river_warn = river_reference(cid, kind, seed)
    verdict = ours(**kw).update(stream(kind, seed, n))
    assert verdict.drifts == expected
    assert verdict.drift_at == (expected[0] if expected else None)
    hits = np.flatnonzero(river_warn)
    assert verdict.warning_at == (int(hits[0]) if hits.size else None)


@pytest.mark.parametrize(("cid", "kind", "seed"), list(_params()))
def test_small_batches_match_river(cid, kind, seed):
    _, ours, _, kw, _, n = CASE[cid]
    expected, river_warn = river_reference(cid, kind, seed)
    rng = np.random.default_rng(seed)
    for sizes in ([1] if n <= 1_200 else [3], [7], list(rng.integers(1, 300, 50))):
        drifts, warnings = _feed(ours(**kw), stream(kind, seed, n), sizes)
        assert tuple(drifts) == expected, sizes
        _check_warnings(warnings, river_warn, sizes)


@pytest.mark.parametrize(("cid", "kind", "seed"), list(_params()))
def test_state_round_trip_mid_stream(cid, kind, seed):
    _, ours, _, kw, _, n = CASE[cid]
    expected, _ = river_reference(cid, kind, seed)
    x = stream(kind, seed, n)
    for cut in (n // 3, n // 2 + 17, n - 5):
        det = ours(**kw)
        first = [i for i in det.update(x[:cut]).drifts]
        saved = json.loads(json.dumps(det.state(), allow_nan=False))  # strict JSON
        clone = ours.from_state(saved)
        assert clone.state() == saved
        rest = [cut + i for i in clone.update(x[cut:]).drifts]
        assert tuple(first + rest) == expected, cut


@pytest.mark.parametrize("cls", [DDM, EDDM, ADWIN, PageHinkley, KSWIN])
def test_reset_forgets_everything(cls):
    det = cls()
    x = stream("bin-abrupt", 5, 4_000)
    before = det.state()
    det.update(x)
    det.reset()
    after = det.state()
    assert after == before


def test_kswin_without_seed_round_trips_its_sampler():
    x = stream("real-abrupt", 3, 3_000)
    det = KSWIN()
    det.update(x[:1_000])
    clone = KSWIN.from_state(json.loads(json.dumps(det.state())))
    assert det.update(x[1_000:]) == clone.update(x[1_000:])


def test_empty_batch_and_plain_lists():
    det = ADWIN()
    assert det.update(np.empty(0)).drifts == ()
    assert DDM().update([0, 1, 0]).drift_at is None


@pytest.mark.parametrize(
    ("cls", "kw", "name"),
    [
        (DDM, {"warm_start": -1}, "warm_start"),
        (DDM, {"warm_start": 2.5}, "warm_start"),
        (DDM, {"warning_threshold": 0}, "warning_threshold"),
        (DDM, {"drift_threshold": float("nan")}, "drift_threshold"),
        (DDM, {"warning_threshold": 4.0, "drift_threshold": 3.0}, "drift_threshold"),
        (EDDM, {"alpha": 1.5}, "alpha"),
        (EDDM, {"beta": 0.0}, "beta"),
        (EDDM, {"alpha": 0.8, "beta": 0.9}, "alpha"),
        (EDDM, {"warm_start": True}, "warm_start"),
        (ADWIN, {"delta": 0.0}, "delta"),
        (ADWIN, {"delta": 1.0}, "delta"),
        (ADWIN, {"clock": 0}, "clock"),
        (ADWIN, {"max_buckets": 0}, "max_buckets"),
        (ADWIN, {"min_window_length": 0}, "min_window_length"),
        (ADWIN, {"grace_period": -3}, "grace_period"),
        (PageHinkley, {"min_instances": -1}, "min_instances"),
        (PageHinkley, {"delta": -0.1}, "delta"),
        (PageHinkley, {"threshold": 0.0}, "threshold"),
        (PageHinkley, {"alpha": 1.01}, "alpha"),
        (PageHinkley, {"mode": "sideways"}, "mode"),
        (KSWIN, {"alpha": 0.0}, "alpha"),
        (KSWIN, {"stat_size": 0}, "stat_size"),
        (KSWIN, {"window_size": 50, "stat_size": 30}, "window_size"),
        (KSWIN, {"seed": -1}, "seed"),
        (KSWIN, {"seed": "abc"}, "seed"),
    ],
)
def test_bad_params_raise_value_error(cls, kw, name):
    with pytest.raises(ValueError, match=name):
        cls(**kw)


@pytest.mark.parametrize("cls", [DDM, EDDM, ADWIN, PageHinkley, KSWIN])
def test_bad_values_raise_value_error(cls):
    with pytest.raises(ValueError, match="finite"):
        cls().update(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="one-dimensional"):
        cls().update(np.zeros((2, 2)))


@pytest.mark.parametrize("cls", [DDM, EDDM])
def test_binary_detectors_reject_non_binary_values(cls):
    with pytest.raises(ValueError, match="0 .correct. or 1"):
        cls().update(np.array([0.0, 0.5]))


# --- property: how a stream is cut into batches never changes what is detected -------------

PROPERTY_DETECTORS = {
    "ddm": lambda: DDM(warm_start=10),
    "eddm": lambda: EDDM(warm_start=10, alpha=0.9, beta=0.8),
    "adwin": lambda: ADWIN(delta=0.05, clock=4),
    "ph": lambda: PageHinkley(threshold=5.0, min_instances=5),
    "kswin": lambda: KSWIN(alpha=0.01, window_size=40, stat_size=15, seed=3),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(PROPERTY_DETECTORS)),
    seed=st.integers(0, 2**16),
    p_before=st.floats(0.0, 0.5),
    p_after=st.floats(0.0, 1.0),
    cuts=st.lists(st.integers(0, 3_000), max_size=12),
    via_state=st.booleans(),
)
def test_batch_splitting_never_changes_detections(name, seed, p_before, p_after, cuts, via_state):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.random(1_500) < p_before, rng.random(1_500) < p_after].astype(float)
    make = PROPERTY_DETECTORS[name]
    whole = make().update(x)
    det, drifts, warning = make(), [], None
    bounds = [0, *sorted(set(cuts)), len(x)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if via_state:
            det = type(det).from_state(json.loads(json.dumps(det.state())))
        verdict = det.update(x[lo:hi])
        drifts += [lo + i for i in verdict.drifts]
        if warning is None and verdict.warning_at is not None:
            warning = lo + verdict.warning_at
    assert tuple(drifts) == whole.drifts
    if whole.warning_at is not None:  # a later batch may re-report a warning that persists
        assert warning == whole.warning_at
