"""Benchmark the concept-drift detectors against river's, side by side in the same run.

    python bench/concept_drift.py [--reps N] [--scale F]

For each detector and each scenario (abrupt / gradual rise of the error rate) it generates
Bernoulli error streams with a known change point, feeds them to our detector (one batch per
stream) and to river's (one value at a time, as river is used), and prints the mean detection
delay after the change, the misses, false alarms per 100,000 stable outcomes, and throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.concept import ADWIN, DDM, EDDM, KSWIN, PageHinkley  # noqa: E402

try:
    from river import drift as river_drift
    from river.drift import binary as river_binary
except ImportError:  # pragma: no cover - river is a test extra
    river_drift = river_binary = None


@dataclass(frozen=True)
class Spec:
    name: str
    ours: type
    river: str  # attribute path in river.drift
    kwargs: dict
    stable: int  # outcomes before the change
    after: int  # outcomes after the change


SPECS = [
    Spec("DDM", DDM, "binary.DDM", {}, 50_000, 5_000),
    Spec("EDDM", EDDM, "binary.EDDM", {}, 50_000, 5_000),
    Spec("ADWIN", ADWIN, "ADWIN", {}, 50_000, 5_000),
    Spec("PageHinkley", PageHinkley, "PageHinkley", {"threshold": 25.0}, 50_000, 5_000),
    Spec("KSWIN", KSWIN, "KSWIN", {"seed": 42}, 3_000, 1_000),
]
P_BEFORE, P_AFTER, RAMP = 0.1, 0.3, 1_000


def make_stream(rng: np.random.Generator, stable: int, after: int, scenario: str) -> np.ndarray:
    p = np.full(stable + after, P_AFTER)
    p[:stable] = P_BEFORE
    if scenario == "gradual":
        ramp = min(RAMP, after)
        p[stable : stable + ramp] = np.linspace(P_BEFORE, P_AFTER, ramp)
    return (rng.random(p.size) < p).astype(float)


def river_factory(spec: Spec):
    obj = river_drift
    for part in spec.river.split("."):
        obj = getattr(obj, part)
    return lambda: obj(**spec.kwargs)


def run_ours(spec: Spec, x: np.ndarray) -> tuple[list[int], float]:
    start = time.perf_counter()
    drifts = list(spec.ours(**spec.kwargs).update(x).drifts)
    return drifts, time.perf_counter() - start


def run_river(make, x: np.ndarray) -> tuple[list[int], float]:
    det, drifts, values = make(), [], x.tolist()
    start = time.perf_counter()
    for i, v in enumerate(values):
        det.update(v)
        if det.drift_detected:
            drifts.append(i)
    return drifts, time.perf_counter() - start


def summarise(runs: list[list[int]], stable: int) -> tuple[float, int, float]:
    delays, misses, false_alarms = [], 0, 0
    for drifts in runs:
        false_alarms += sum(d < stable for d in drifts)
        late = [d - stable for d in drifts if d >= stable]
        if late:
            delays.append(late[0])
        else:
            misses += 1
    mean_delay = float(np.mean(delays)) if delays else float("nan")
    return mean_delay, misses, 1e5 * false_alarms / (stable * len(runs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4, help="streams per scenario (default 4)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply stream lengths")
    args = ap.parse_args(argv)
    if river_drift is None:
        sys.exit("river is not installed: pip install river")
    header = (
        f"{'detector':<12} {'scenario':<8} {'impl':<6} {'mean delay':>10} {'missed':>7} "
        f"{'FA/100k':>8} {'outcomes/s':>12} {'same':>5}"
    )
    print(f"Bernoulli error streams: p={P_BEFORE} -> {P_AFTER} (gradual: linear over {RAMP}); "
          f"{args.reps} streams per scenario")
    print(header)
    print("-" * len(header))
    for spec in SPECS:
        stable, after = int(spec.stable * args.scale), int(spec.after * args.scale)
        make = river_factory(spec)
        reps = args.reps if spec.name != "KSWIN" else max(1, args.reps // 2)
        for scenario in ("abrupt", "gradual"):
            rng = np.random.default_rng(2024)
            streams = [make_stream(rng, stable, after, scenario) for _ in range(reps)]
            ours = [run_ours(spec, x) for x in streams]
            theirs = [run_river(make, x) for x in streams]
            same = all(a[0] == b[0] for a, b in zip(ours, theirs))
            n = sum(x.size for x in streams)
            for impl, res in (("ours", ours), ("river", theirs)):
                delay, missed, fa = summarise([r[0] for r in res], stable)
                speed = n / sum(r[1] for r in res)
                print(
                    f"{spec.name:<12} {scenario:<8} {impl:<6} {delay:>10.1f} "
                    f"{missed:>4}/{reps:<2} {fa:>8.1f} {speed:>12,.0f} {'yes' if same else 'NO':>5}"
                )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
