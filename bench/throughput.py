"""In-process hot-path throughput: Pipeline.process on RecordBatch lists, no broker.

    python bench/throughput.py [--events 100000] [--features 10,50] [--batch 5000] [--repeat 2]

For each feature count: a ~20k-row reference (numeric features + 3 categoricals, binary target,
prediction and score columns) is written to Parquet and loaded the way the agent loads it
(build_config -> ModelReference.load). N prediction records are encoded as JSON once; labels
are sent for 50% of them, three polls after their prediction (so most join a retained window,
a few arrive first for predictions of the same poll's later batches). Rows:

- ``peer: orjson+pandas``: the common way, for scale: orjson per record and a pandas frame of
  each batch's features, no contract checks. Run in the same process, so the ratio to the rows
  below holds on a noisy machine.
- ``decode only``: the pipeline's Decoder (native scan, then typed per-model structs, as the agent
  runs it) over the same batches, both streams (JSON -> validated columns).
- ``whole path``: Pipeline.process per poll (decode + validate + schema/skew counts + join +
  window update + window close and drift verdicts), a fresh monitor per repeat.

Events are records of either stream (predictions + labels). Everything runs on one thread:
``events/s`` is per wall-clock second, ``events/s/core`` per second of this process's CPU time
(time.process_time), which a shared, noisy machine disturbs less. The 1-minute load average is
printed with the results. Best of ``--repeat`` runs (fastest wall time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ingest.broker import RecordBatch  # noqa: E402
from agent.config import build_config  # noqa: E402
from agent.state.counters import Counters  # noqa: E402
from agent.decode.decoder import Decoder  # noqa: E402
from agent.monitor.model import ModelMonitor  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.monitor.reference import ModelReference  # noqa: E402
from agent.decode.scanner import NATIVE  # noqa: E402

MODEL = "bench"
N_CATEGORICAL = 3
LABEL_DELAY_POLLS = 3
T0 = 1_790_000_000.0


def feature_names(n_features: int) -> tuple[list[str], list[str]]:
    n_cat = min(N_CATEGORICAL, n_features)
    return [f"x{j}" for j in range(n_features - n_cat)], [f"c{j}" for j in range(n_cat)]


def generate(n: int, n_features: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numeric, categorical = feature_names(n_features)
    cols: dict[str, np.ndarray] = {}
    x = rng.normal(size=(n, len(numeric))).round(6)
    for j, name in enumerate(numeric):
        cols[name] = x[:, j]
    for j, name in enumerate(categorical):
        cols[name] = rng.choice([f"{name}_{k}" for k in range(5 + 5 * j)], n)
    logit = x[:, : min(3, x.shape[1])].sum(axis=1) if numeric else np.zeros(n)
    p = 1.0 / (1.0 + np.exp(-logit))
    cols["y"] = (rng.random(n) < p).astype(np.int64)
    cols["y_pred"] = (p > 0.5).astype(np.int64)
    cols["y_proba"] = p.round(6)
    return pd.DataFrame(cols)


def build_pipeline(ref_path: Path, n_features: int, window: int) -> Pipeline:
    numeric, categorical = feature_names(n_features)
    cfg = build_config({"models": {MODEL: {
        "task": "binary_classification", "reference": str(ref_path), "target": "y", "prediction": "y_pred",
        "score": "y_proba", "features": numeric + categorical, "window": {"size": window, "label_retention": 4},
        "segments": categorical[:1],
    }}})
    ref = ModelReference.load(MODEL, cfg.models[MODEL])
    counters = Counters()
    mon = ModelMonitor(ref, counters, ttl_s=cfg.join.ttl, max_pending_labels=cfg.join.max_pending_labels)
    return Pipeline({MODEL: mon}, counters, "predictions", "labels")


def encode_polls(traffic: pd.DataFrame, batch: int, seed: int) -> list[list[RecordBatch]]:
    """One poll per prediction batch: [predictions, labels of the batch LABEL_DELAY_POLLS earlier]."""
    numeric = [c for c in traffic.columns if c.startswith("x")]
    categorical = [c for c in traffic.columns if c.startswith("c")]
    names = numeric + categorical
    rows = traffic[names].to_numpy(dtype=object).tolist()
    y, yp, score = traffic["y"].tolist(), traffic["y_pred"].tolist(), traffic["y_proba"].tolist()
    n = len(traffic)
    ids = [f"p{i}" for i in range(n)]
    pred_values = [orjson.dumps({"prediction_id": ids[i], "model": MODEL, "model_version": "1",
                                 "timestamp": T0 + i * 0.01, "features": dict(zip(names, rows[i])),
                                 "prediction": yp[i], "score": score[i]}) for i in range(n)]
    rng = np.random.default_rng(seed)
    labelled = rng.random(n) < 0.5
    polls: list[list[RecordBatch]] = []
    offset = {"predictions": 0, "labels": 0}

    def record_batch(topic: str, values: list[bytes], ts: float, keys: list[bytes]) -> RecordBatch:
        k = len(values)
        b = RecordBatch(topic, 0, np.arange(offset[topic], offset[topic] + k, dtype=np.int64),
                        np.full(k, int(ts * 1000), dtype=np.int64), keys, values)
        offset[topic] += k
        return b

    starts = list(range(0, n, batch))
    for k, lo in enumerate(starts + [n] * LABEL_DELAY_POLLS):
        poll = []
        if lo < n:
            hi = min(n, lo + batch)
            poll.append(record_batch("predictions", pred_values[lo:hi], T0 + lo * 0.01,
                                     [i.encode() for i in ids[lo:hi]]))
        j = k - LABEL_DELAY_POLLS
        if 0 <= j < len(starts):
            llo, lhi = starts[j], min(n, starts[j] + batch)
            sel = [i for i in range(llo, lhi) if labelled[i]]
            lab_values = [orjson.dumps({"prediction_id": ids[i], "model": MODEL, "label": y[i],
                                        "timestamp": T0 + i * 0.01 + 3600.0}) for i in sel]
            poll.append(record_batch("labels", lab_values, T0 + lhi * 0.01 + 3600.0, [ids[i].encode() for i in sel]))
        polls.append(poll)
    return polls


def bench_decode(polls: list[list[RecordBatch]], decoder: Decoder) -> tuple[float, int, float]:
    """decode + validate + feature columns, as the agent runs it (native scan, then typed
    per-model structs for what the scanner leaves)."""
    events = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for poll in polls:
        for b in poll:
            if b.topic == "predictions":
                decoder.predictions(b.values, b.timestamps_ms)
            else:
                decoder.labels(b.values, b.timestamps_ms)
            events += len(b)
    return time.perf_counter() - t0, events, time.process_time() - c0


def bench_peer(polls: list[list[RecordBatch]], numeric: list[str]) -> tuple[float, int, float]:
    """The common way, for scale: orjson per record, then a pandas frame of the batch's features
    (numeric columns as float64), no contract checks."""
    events = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for poll in polls:
        for b in poll:
            recs = [orjson.loads(v) for v in b.values]
            if b.topic == "predictions":
                frame = pd.DataFrame([r["features"] for r in recs])
                frame[numeric].to_numpy(dtype=float)
            else:
                pd.DataFrame(recs)
            events += len(b)
    return time.perf_counter() - t0, events, time.process_time() - c0


def bench_pipeline(pipe: Pipeline, polls: list[list[RecordBatch]]) -> tuple[float, int, float, dict[str, float]]:
    stages: dict[str, float] = defaultdict(float)
    pipe.on_stage = lambda stage, s: stages.__setitem__(stage, stages[stage] + s)
    events = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for poll in polls:
        results, dead = pipe.process(poll)
        events += sum(len(b) for b in poll)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert not dead
    return elapsed, events, cpu, dict(stages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="prediction records (labels add 50%%)")
    ap.add_argument("--features", default="10,50", help="comma-separated feature counts")
    ap.add_argument("--batch", type=int, default=5_000, help="records per polled prediction batch")
    ap.add_argument("--window", type=int, default=10_000, help="count window size")
    ap.add_argument("--reference-rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    widths = [int(x) for x in args.features.split(",") if x.strip()]

    print(f"driftwarden in-process hot path: {args.events:,} predictions + 50% labels (delay {LABEL_DELAY_POLLS} polls), "
          f"batches of {args.batch:,}, count window {args.window:,}, reference {args.reference_rows:,} rows, "
          f"best of {args.repeat}")
    print(f"native scanner: {NATIVE}; single-threaded (one core); os.cpu_count()={os.cpu_count()}, os.getloadavg() before={tuple(round(x, 2) for x in os.getloadavg())}")
    header = f"{'features':>8}  {'path':<20}{'events':>10}{'seconds':>10}{'events/s':>12}{'events/s/core':>15}  stages (s)"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for nf in widths:
            ref_path = Path(tmp) / f"ref_{nf}.parquet"
            generate(args.reference_rows, nf, seed=1).to_parquet(ref_path)
            polls = encode_polls(generate(args.events, nf, seed=2), args.batch, seed=3)
            pipe = build_pipeline(ref_path, nf, args.window)
            best_peer = min(bench_peer(polls, feature_names(nf)[0]) for _ in range(args.repeat))
            best_dec = min(bench_decode(polls, pipe.decoder) for _ in range(args.repeat))
            runs = [bench_pipeline(build_pipeline(ref_path, nf, args.window), polls) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r[0])
            rows = (("peer: orjson+pandas", (*best_peer, {})), ("decode only", (*best_dec, {})), ("whole path", best))
            for path, (secs, events, cpu, stages) in rows:
                rate, per_core = events / secs, events / cpu
                st = " ".join(f"{k}={v:.2f}" for k, v in sorted(stages.items()))
                print(f"{nf:>8}  {path:<20}{events:>10,}{secs:>10.2f}{rate:>12,.0f}{per_core:>15,.0f}  {st}")
    print(f"os.getloadavg() after={tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
