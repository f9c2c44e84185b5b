"""Root-cause analysis timing: a result for 1,000,000 window rows, and ingest while it runs.

(1) ``analyse`` on current windows of 10^5 and 10^6 rows in all (car-loan rows resampled, concept
    drift planted in one segment, the served model's predictions; the planted-cause generator of
    tests/support/planted.py), against the 15,000-row reference: wall seconds, the top cause, and
    the peak RSS. Target: within 30 s of the incident for 10^6 rows.
(2) Ingest while an analysis runs: ``Pipeline.process`` (the agent's whole hot path: decode,
    validate, join, window, judge) over pre-encoded car-loan records for a fixed time, alone and
    then beside ``RCAWorker``-style analyses running back to back on another thread (one OpenMP
    thread, as the agent runs them). Ratio = events/s with / without. Target: >= 0.8.

    python bench/rca_timing.py            # both parts (~3 minutes on 2 cores)
    python bench/rca_timing.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import build_config  # noqa: E402
from agent.ingest.broker import RecordBatch  # noqa: E402
from agent.monitor.model import ModelMonitor  # noqa: E402
from agent.monitor.reference import ModelReference  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.state.counters import Counters  # noqa: E402
from detectors.rca import analyse  # noqa: E402
from tests.support.planted import plant  # noqa: E402


def big(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    sc = plant("concept_drift", "car_loan", seed=seed)
    cur = sc.current.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    cur["id"] = np.arange(len(cur))
    return sc.reference, cur, sc.columns


def part1(sizes: list[int]) -> None:
    print(f"\n(1) analyse on windows of N rows (reference 15,000 rows)\n{'rows':>10s} {'seconds':>8s} "
          f"{'RSS MiB':>8s}  top cause")
    for n in sizes:
        ref, cur, c = big(n)
        t0 = time.perf_counter()
        r = analyse(ref, cur, target=c["target"], features=c["features"], prediction="y_pred", score="y_score",
                    categorical=c["categorical"], segments=c["segments"], id_column="id")
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        top = r.top
        print(f"{n:>10,d} {dt:8.1f} {rss:8.0f}  {top.cause if top else '-'} {top.segment or top.feature if top else ''}",
              flush=True)


def records(n: int) -> tuple[list[bytes], list[bytes]]:
    from agent.ingest.replay import ReplaySpec, label_records, prediction_records
    from tests.support.data import data_file

    f = pd.read_csv(data_file("synthetic_car_loan_analysis.csv")).iloc[:n]
    t = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv"))
    f = f.merge(t, on="id", how="left")
    spec = ReplaySpec(model="car-loan")
    preds = [v for _, v in prediction_records(f, spec)]
    labs = label_records(f, spec, "repaid")
    lab_values = [orjson.dumps({"prediction_id": pid, "model": "car-loan", "label": y}) for pid, _, y in labs]
    return preds, lab_values


def ingest_rate(pipe_factory, preds: list[bytes], labs: list[bytes], seconds: float) -> float:  # noqa: ANN001
    done = 0
    t0 = time.perf_counter()
    step = 2000
    while time.perf_counter() - t0 < seconds:
        pipe = pipe_factory()
        for lo in range(0, len(preds), step):
            p, lab = preds[lo:lo + step], labs[lo:lo + step]
            offs = np.arange(lo, lo + len(p))
            pipe.process([RecordBatch("predictions", 0, offs, np.zeros(len(p), np.int64), [None] * len(p), p),
                          RecordBatch("labels", 0, offs[: len(lab)], np.zeros(len(lab), np.int64), [None] * len(lab),
                                      lab)])
            done += len(p) + len(lab)
            if time.perf_counter() - t0 >= seconds:
                break
    return done / (time.perf_counter() - t0)


def part2(seconds: float, rows: int) -> None:
    from tests.support.data import data_file

    cfg = build_config({"models": {"car-loan": {
        "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
        "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba", "window": {"size": 5000},
        "segments": ["salary_range"]}}})
    ref = ModelReference.load("car-loan", cfg.models["car-loan"])

    def factory() -> Pipeline:
        mon = ModelMonitor(ref, Counters())
        return Pipeline({"car-loan": mon}, mon.counters, "predictions", "labels")

    preds, labs = records(40_000)
    ingest_rate(factory, preds, labs, 3.0)  # warm up
    alone = ingest_rate(factory, preds, labs, seconds)
    stop = threading.Event()
    analyses = []
    r_ref, r_cur, c = big(rows)

    def worker() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            analyse(r_ref, r_cur, target=c["target"], features=c["features"], prediction="y_pred", score="y_score",
                    categorical=c["categorical"], segments=c["segments"], id_column="id")
            analyses.append(time.perf_counter() - t0)

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    time.sleep(1.0)
    beside = ingest_rate(factory, preds, labs, seconds)
    stop.set()
    th.join()
    print(f"\n(2) ingest (Pipeline.process, car-loan records, 1 thread) with and without an analysis of "
          f"{rows:,d} rows running\n{'':24s} {'events/s':>10s}")
    print(f"{'alone':24s} {alone:10,.0f}")
    print(f"{'beside an analysis':24s} {beside:10,.0f}   ratio {beside / alone:.2f} (target >= 0.8); "
          f"{len(analyses)} analyses finished meanwhile, {np.mean(analyses) if analyses else float('nan'):.1f} s each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--ingest-seconds", type=float, default=20.0)
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    part1(args.rows)
    if not args.skip_ingest:
        part2(args.ingest_seconds, min(args.rows))


if __name__ == "__main__":
    main()
