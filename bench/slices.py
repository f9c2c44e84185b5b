"""Slice discovery: driftwarden's find_slices vs sliceline's Slicefinder, side by side.

(1) Planted-slice recovery: synthetic windows of 100,000 rows x 20 columns (10 numeric, 10
    categorical) with a two-predicate slice (``c0=a`` [20 %] & ``x0`` in its top reference decile
    [10 %], 2 % of rows) whose error rate is 0.4 against 0.1 elsewhere; 20 seeds. A run is a hit
    when its rank-1 slice selects the planted rows (Jaccard >= 0.5). sliceline gets the same
    binned codes (driftwarden's reference-quantile levels), ``max_l=2``, the same minimum
    support, ``k=10`` and ``alpha=0.95`` (its SIGMOD paper's setting; its default 0.6 favours
    large slices and is shown too).
(2) Clean data (errors independent of features): share of runs whose report holds any
    BH-significant slice (sliceline has no test: not applicable).
(3) Scale: 1,000,000 x 20 with pairs, driftwarden, for 0/1 errors (binomial) and for numeric
    losses (Welch; gamma losses raised by 0.5 in the planted slice); sliceline level 2 on 100,000
    rows is (1)'s row; sliceline at 1,000,000 only if its memory, extrapolated linearly from
    100,000 rows, stays under 8 GiB.

sliceline takes ~15 s and ~5 GiB per 100,000-row run here, so it runs 12 of the 20 seeds at
alpha=0.95 (the first under tracemalloc for its memory, the other 11 timed) and 2 at alpha=0.6,
to keep the whole bench near 4 minutes.

Each engine runs in its own spawned process: "time/run" is the mean wall time of one call
(encoding/binning included for driftwarden; sliceline's time excludes the binning it is given),
"traced" the tracemalloc peak of one call (seed 0), "RSS" the process's peak resident set
(data included).

    python bench/slices.py            # all three parts (~3-4 minutes on 2 cores)
    python bench/slices.py --quick    # 5 seeds
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_NUM, N_CAT = 10, 10
COLUMNS = [f"x{i}" for i in range(N_NUM)] + [f"c{i}" for i in range(N_CAT)]
BASE, PLANTED = 0.1, 0.4
X0_Q90 = 1.2815515655446004  # standard normal 90 % quantile
GIB = 2**30


def _frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    for i in range(N_NUM):
        kind = i % 4
        if kind == 0:
            v = rng.standard_normal(n)
        elif kind == 1:
            v = rng.lognormal(0.0, 1.0, n)
        elif kind == 2:
            v = rng.uniform(0, 100, n)
        else:
            v = rng.integers(0, 30, n).astype(np.float64)
        if i in (3, 7):
            v[rng.random(n) < 0.02] = np.nan
        cols[f"x{i}"] = v
    for i in range(N_CAT):
        k = 3 + i
        if i == 0:
            p = np.array([0.2] + [0.8 / (k - 1)] * (k - 1))
        else:
            p = rng.dirichlet(np.ones(k) * 2)
        labels = np.array([chr(ord("a") + j) for j in range(k)], dtype=object)
        cols[f"c{i}"] = labels[rng.choice(k, n, p=p)]
    return pd.DataFrame(cols)[COLUMNS]


def planted_data(n: int, seed: int, planted: bool = True) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """(window, errors, reference, reference_errors, planted mask)."""
    rng = np.random.default_rng(seed)
    ref = _frame(n, rng)
    win = _frame(n, rng)
    mask = (win["c0"].to_numpy() == "a") & (win["x0"].to_numpy() >= X0_Q90)
    if not planted:
        mask[:] = False
    errors = (rng.random(n) < np.where(mask, PLANTED, BASE)).astype(np.int8)
    ref_errors = (rng.random(n) < BASE).astype(np.int8)
    return win, errors, ref, ref_errors, mask


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _traced(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] / GIB
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------- engines


def _dw(win, errors, ref, ref_errors):
    from detectors.rca import find_slices
    return find_slices(win, errors, ref, COLUMNS, reference_errors=ref_errors, max_order=2)


def _codes(report, frame: pd.DataFrame) -> np.ndarray:
    """The report's level codes of every column (what sliceline is given)."""
    return np.column_stack([b.codes(frame[b.column]).astype(np.int16) for b in report.bins])


def run_driftwarden(n: int, seeds: list[int], planted: bool, losses: bool = False) -> dict:
    hits, sig, times = 0, 0, []
    traced = float("nan")
    for seed in seeds:
        win, errors, ref, ref_errors, mask = planted_data(n, seed, planted)
        if losses:  # squared-error-like losses, raised in the planted slice (Welch's test)
            rng = np.random.default_rng(seed + 99)
            errors = rng.gamma(2.0, 0.5, n) + np.where(mask, 0.5, 0.0)
            ref_errors = rng.gamma(2.0, 0.5, n)
        t = time.perf_counter()
        report = _dw(win, errors, ref, ref_errors)
        times.append(time.perf_counter() - t)
        if seed == seeds[0]:
            traced = _traced(lambda: _dw(win, errors, ref, ref_errors))[1]
        if planted and report.slices:
            hits += _jaccard(report.mask(win, report.slices[0]), mask) >= 0.5
        sig += bool(report.significant)
    return {"hits": hits, "runs": len(seeds), "significant": sig, "time": float(np.mean(times)),
            "traced": traced, "rss": _peak_rss_gib()}


def run_sliceline(n: int, seeds: list[int], alpha: float, trace: bool = True) -> dict:
    """The first seed runs under tracemalloc (memory); the others are timed (all count for hits)."""
    import warnings

    from sliceline.slicefinder import Slicefinder

    from detectors.rca import find_slices
    hits, times = 0, []
    traced = float("nan")
    for seed in seeds:
        win, errors, ref, _, mask = planted_data(n, seed)
        bins_only = find_slices(win, errors, ref, COLUMNS, max_order=1, top_k=1)  # same levels as driftwarden
        X = _codes(bins_only, win)
        min_sup = bins_only.min_support

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return Slicefinder(alpha=alpha, k=10, max_l=2, min_sup=min_sup, verbose=False).fit(
                    X, errors.astype(np.float64))  # int8 errors overflow its sums
        if trace and seed == seeds[0] and len(seeds) > 1:
            sf, traced = _traced(fit)
        else:
            t = time.perf_counter()
            sf = fit()
            times.append(time.perf_counter() - t)
        if len(sf.top_slices_):
            top = sf.top_slices_[0]
            sel = np.ones(n, dtype=bool)
            for j, v in enumerate(top):
                if v is not None:
                    sel &= X[:, j] == v
            hits += _jaccard(sel, mask) >= 0.5
    return {"hits": hits, "runs": len(seeds), "significant": None, "time": float(np.mean(times)),
            "traced": traced, "rss": _peak_rss_gib()}


def _in_child(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_seeds, n_sl = (5, 2) if args.quick else (20, 12)
    seeds = list(range(n_seeds))
    clean_seeds = list(range(1000, 1000 + n_seeds))
    t0 = time.perf_counter()
    print("| part    | engine                   | data      | rank-1 hit | any significant | time/run (s) | traced GiB | RSS GiB |")
    print("|---------|--------------------------|-----------|-----------:|----------------:|-------------:|-----------:|--------:|")

    def show(part: str, engine: str, r: dict, data: str) -> None:
        hit = "-" if r.get("hits") is None else f"{r['hits']}/{r['runs']}"
        sig = "n/a (no test)" if r.get("significant") is None else f"{r['significant']}/{r['runs']}"
        traced = "-" if np.isnan(r["traced"]) else f"{r['traced']:.3f}"
        print(f"| {part:<7} | {engine:<24} | {data:<9} | {hit:>10} | {sig:>15} | {r['time']:12.2f} | "
              f"{traced:>10} | {r['rss']:7.2f} |", flush=True)

    show("planted", "driftwarden find_slices", _in_child(run_driftwarden, 100_000, seeds, True), "100k x 20")
    sl = _in_child(run_sliceline, 100_000, seeds[:n_sl], 0.95)
    show("planted", "sliceline alpha=0.95", sl, "100k x 20")
    show("planted", "sliceline alpha=0.6", _in_child(run_sliceline, 100_000, seeds[:2], 0.6, False), "100k x 20")
    clean = _in_child(run_driftwarden, 100_000, clean_seeds, False)
    clean["hits"] = None
    show("clean", "driftwarden find_slices", clean, "100k x 20")
    show("scale", "driftwarden (0/1 errors)", _in_child(run_driftwarden, 1_000_000, [7], True), "1M x 20")
    show("scale", "driftwarden (losses)", _in_child(run_driftwarden, 1_000_000, [7], True, True), "1M x 20")
    est = sl["traced"] * 10  # its level-2 products grow with rows x pairs of levels
    if est < 8:
        show("scale", "sliceline alpha=0.95", _in_child(run_sliceline, 1_000_000, [7], 0.95, False), "1M x 20")
    else:
        print(f"| scale   | sliceline alpha=0.95     | 1M x 20   | not run: ~{est:.0f} GiB estimated (10 x its "
              f"traced peak at 100k) > 8 GiB |")
    print(f"\nsliceline ran {n_sl} of the {n_seeds} seeds at alpha=0.95 and 2 at alpha=0.6 "
          f"({sl['time']:.0f} s and {sl['traced']:.1f} GiB a run at 100k rows); "
          f"total bench time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
