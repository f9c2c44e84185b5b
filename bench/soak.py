"""Soak: does the agent's memory stay flat on a long stream full of the things that grow state?

    python bench/soak.py [--events 1000000] [--report-every 250000] [--batch 5000]

Streams prediction + label records through the in-process hot path (agent.pipeline.Pipeline and
two ModelMonitors, loaded the way the agent loads them; no broker, as in bench/throughput.py)
and prints resident memory (RSS, from /proc/self/statm) against events processed.

The stream holds what makes state grow when a bound is missing:

- 10% of predictions never get a label (their rows must leave with their window);
- orphan labels (1% extra labels for ids never predicted) wait in the join: capped by
  ``join.max_pending_labels`` (set to 10,000 here) and then expired oldest first;
- a flood of one model: model ``loans`` gets 70% of the traffic, and 100% in every other
  quarter of the run;
- a high-cardinality categorical feature (``user_id``: a new value on every record; the
  reference has 5,000 values, so the schema caps it at 200 categories and the rest bin as other);
- occasional huge records (2 MiB, every 50,000th prediction): rejected by size, never decoded;
- with ``--unexpected-keys RATE``: that share of records carries a feature key never seen before
  (``debug_<n>``), e.g. a serving stack that leaks a request id into the feature names.

Events are records of either stream; events/s counts time inside the pipeline only (generating
and encoding the stream is excluded). At the end: whether RSS is flat after warm-up, i.e. the
spread (max - min) of the samples in the last half of the run, in MiB and as a % of their min.
Memory-bound state (rows kept for joins, pending labels, exported series) is printed next to RSS
so that growth can be traced to its owner.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ingest.broker import RecordBatch  # noqa: E402
from agent.config import build_config  # noqa: E402
from agent.state.counters import Counters  # noqa: E402
from agent.monitor.model import ModelMonitor  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.monitor.reference import ModelReference  # noqa: E402

MODELS = ("loans", "fraud")
NUMERIC = [f"x{j}" for j in range(6)]
CATEGORICAL = ["city", "user_id"]
CITIES = [f"city-{k}" for k in range(8)]
T0 = 1_790_000_000.0
LABEL_DELAY_POLLS = 3
UNLABELLED = 0.10
ORPHAN_LABELS = 0.01
HUGE_EVERY = 50_000
HUGE_BYTES = 2 * 1024 * 1024
MAX_RECORD_BYTES = 64 * 1024
MAX_PENDING = 10_000
WINDOW = 10_000
RETENTION = 4
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def write_reference(path: Path, rows: int = 20_000) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, len(NUMERIC))).round(5)
    p = 1 / (1 + np.exp(-x[:, :3].sum(axis=1)))
    frame = pd.DataFrame({n: x[:, j] for j, n in enumerate(NUMERIC)})
    frame["city"] = rng.choice(CITIES, rows)
    frame["user_id"] = [f"user-{k}" for k in rng.integers(0, 5_000, rows)]
    frame["y"] = (rng.random(rows) < p).astype(np.int64)
    frame["y_pred"] = (p > 0.5).astype(np.int64)
    frame["y_proba"] = p.round(5)
    frame.to_parquet(path)


def build_pipeline(ref_path: Path) -> Pipeline:
    model = {"task": "binary_classification", "reference": str(ref_path), "target": "y", "prediction": "y_pred",
             "score": "y_proba", "features": NUMERIC + CATEGORICAL, "segments": ["city"],
             "window": {"size": WINDOW, "label_retention": RETENTION}}
    cfg = build_config({"models": {m: model for m in MODELS}, "join": {"max_pending_labels": MAX_PENDING},
                        "kafka": {"max_record_bytes": MAX_RECORD_BYTES}})
    counters = Counters()
    monitors = {m: ModelMonitor(ModelReference.load(m, cfg.models[m]), counters, ttl_s=cfg.join.ttl,
                                max_pending_labels=cfg.join.max_pending_labels) for m in MODELS}
    return Pipeline(monitors, counters, "predictions", "labels", cfg.kafka.max_record_bytes)


class Stream:
    """Generates polls lazily (nothing but the label delay line is kept)."""

    def __init__(self, batch: int, total_events: int, unexpected_keys: float = 0.0, seed: int = 2) -> None:
        self.batch = batch
        self.unexpected_keys = unexpected_keys
        self.total = total_events
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.offsets = {"predictions": 0, "labels": 0}
        self.delayed: deque[list[tuple[bytes, bytes]]] = deque()
        self.events = 0
        self.huge = 0

    def _flood(self) -> bool:
        return int(4 * self.events / self.total) % 2 == 1  # second and fourth quarters

    def _batch(self, topic: str, keys: list[bytes], values: list[bytes], ts_s: float) -> RecordBatch:
        k = len(values)
        off = self.offsets[topic]
        self.offsets[topic] += k
        return RecordBatch(topic, 0, np.arange(off, off + k, dtype=np.int64), np.full(k, int(ts_s * 1000), np.int64),
                           keys, values)

    def poll(self) -> list[RecordBatch]:
        n, rng = self.batch, self.rng
        ids = range(self.next_id, self.next_id + n)
        self.next_id += n
        share = 1.0 if self._flood() else 0.7
        models = np.where(rng.random(n) < share, MODELS[0], MODELS[1])
        x = rng.normal(size=(n, len(NUMERIC))).round(5)
        p = 1 / (1 + np.exp(-x[:, :3].sum(axis=1)))
        y = (rng.random(n) < p).astype(int).tolist()
        cities = rng.choice(CITIES, n).tolist()
        odd_key = (rng.random(n) < self.unexpected_keys).tolist()
        xs, ps = x.tolist(), p.round(5).tolist()
        keys, values, labels = [], [], []
        for j, i in enumerate(ids):
            pid = f"p{i}"
            feats = dict(zip(NUMERIC, xs[j]))
            feats["city"] = cities[j]
            feats["user_id"] = f"user-{i}"  # never seen before: high cardinality
            if odd_key[j]:
                feats[f"debug_{i}"] = 1
            if i % HUGE_EVERY == HUGE_EVERY - 1:
                feats["blob"] = "x" * HUGE_BYTES
                self.huge += 1
            ts = T0 + i * 0.01
            rec = {"prediction_id": pid, "model": models[j], "timestamp": ts, "features": feats,
                   "prediction": int(ps[j] > 0.5), "score": ps[j]}
            keys.append(pid.encode())
            values.append(orjson.dumps(rec))
            if rng.random() >= UNLABELLED:
                labels.append((pid.encode(), orjson.dumps({"prediction_id": pid, "model": models[j], "label": y[j],
                                                           "timestamp": ts + 3600.0})))
        for k in range(int(n * ORPHAN_LABELS)):
            pid = f"orphan-{self.next_id}-{k}"
            labels.append((pid.encode(), orjson.dumps({"prediction_id": pid, "model": MODELS[k % 2], "label": 1,
                                                       "timestamp": T0 + self.next_id * 0.01})))
        self.delayed.append(labels)
        ts_now = T0 + self.next_id * 0.01
        out = [self._batch("predictions", keys, values, ts_now)]
        if len(self.delayed) > LABEL_DELAY_POLLS:
            due = self.delayed.popleft()
            out.append(self._batch("labels", [k for k, _ in due], [v for _, v in due], ts_now + 3600.0))
        self.events += sum(len(b) for b in out)
        return out


def state_sizes(pipe: Pipeline) -> dict[str, int]:
    rows = sum(w.rows.n for m in pipe.monitors.values() for w in [*m.retained, *m.open.values()])
    c = pipe.counters
    return {"rows": rows, "index": sum(len(m.index) for m in pipe.monitors.values()),
            "pending": sum(len(m.pending) for m in pipe.monitors.values()),
            "series": len(c.events) + len(c.schema) + len(c.skew)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="records of both streams to process")
    ap.add_argument("--batch", type=int, default=5_000, help="predictions per poll")
    ap.add_argument("--report-every", type=int, default=250_000, help="events between two rows of the table")
    ap.add_argument("--unexpected-keys", type=float, default=0.0,
                    help="share of records with a never-seen feature key (default 0)")
    ap.add_argument("--flat-pct", type=float, default=5.0, help="'flat' when the last half's spread is under this %%")
    args = ap.parse_args()

    print(f"driftwarden soak: {args.events:,} events (predictions + labels) through Pipeline.process, "
          f"{len(MODELS)} models, count windows of {WINDOW:,} kept {RETENTION} windows for late labels; "
          f"{UNLABELLED:.0%} of labels never arrive, {ORPHAN_LABELS:.0%} orphan labels (join cap {MAX_PENDING:,}), "
          f"'{MODELS[0]}' floods (70%, 100% in quarters 2 and 4), user_id new on every record, "
          f"a {HUGE_BYTES // 2**20} MiB record every {HUGE_EVERY:,} predictions"
          + (f", {args.unexpected_keys:.2%} of records with a new feature key" if args.unexpected_keys else ""))
    print(f"single thread; os.cpu_count()={os.cpu_count()}, load average before={tuple(round(x, 2) for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "reference.parquet"
        write_reference(ref)
        pipe = build_pipeline(ref)
    stream = Stream(args.batch, args.events, args.unexpected_keys)
    gc.collect()
    base = rss_mib()
    header = (f"{'events':>11} {'seconds':>8} {'events/s':>10} {'RSS MiB':>9} {'rows kept':>10} {'id index':>9} "
              f"{'pending':>8} {'series':>7} {'windows':>8} {'invalid':>8}")
    print(f"RSS after loading references: {base:.1f} MiB")
    print(header)
    print("-" * len(header))
    samples: list[tuple[int, float]] = []
    t_start = time.perf_counter()
    e_last = 0
    next_report = args.report_every
    polls = 0
    busy = busy_last = 0.0  # seconds inside the pipeline (the rest is generating the stream)
    while stream.events < args.events:
        batches = stream.poll()
        t0 = time.perf_counter()
        pipe.process(batches)
        polls += 1
        if polls % 20 == 0:  # the agent re-judges performance on a timer (~1 s), not per poll
            pipe.evaluate()
        busy += time.perf_counter() - t0
        if stream.events >= next_report or stream.events >= args.events:
            now = time.perf_counter()
            rss = rss_mib()
            samples.append((stream.events, rss))
            s = state_sizes(pipe)
            c = pipe.counters
            invalid = sum(v for (_, _, o), v in c.events.items() if o == "invalid")
            rate = (stream.events - e_last) / (busy - busy_last)
            print(f"{stream.events:>11,} {now - t_start:>8.1f} {rate:>10,.0f} {rss:>9.1f} {s['rows']:>10,} "
                  f"{s['index']:>9,} {s['pending']:>8,} {s['series']:>7,} {sum(c.windows.values()):>8,} {invalid:>8,}",
                  flush=True)
            e_last, busy_last = stream.events, busy
            next_report += args.report_every
    total_s = time.perf_counter() - t_start
    c = pipe.counters
    ok = {s: sum(v for (_, st, o), v in c.events.items() if st == s and o == "ok") for s in ("predictions", "labels")}
    expired = sum(v for (_, st, o), v in c.events.items() if o == "expired")
    print(f"\n{stream.events:,} events in {total_s:.1f} s, {busy:.1f} s of it in the pipeline "
          f"({stream.events / busy:,.0f} events/s); "
          f"predictions ok {ok['predictions']:,}, labels ok {ok['labels']:,}, orphan labels expired {expired:,}, "
          f"huge records rejected {stream.huge:,}, unlabelled predictions {sum(c.unlabelled.values()):,}")
    last = [r for e, r in samples if e > args.events / 2]
    if len(last) < 2:
        print("too few samples in the last half to judge flatness: use a larger --events or smaller --report-every")
        return
    spread = max(last) - min(last)
    pct = 100 * spread / min(last)
    verdict = "FLAT" if pct < args.flat_pct else "GROWING"
    print(f"RSS over the last half ({len(last)} samples): min {min(last):.1f} MiB, max {max(last):.1f} MiB, "
          f"spread {spread:.1f} MiB ({pct:.1f}%) -> {verdict} (threshold {args.flat_pct:.0f}%); "
          f"peak {max(r for _, r in samples):.1f} MiB")
    print(f"load average after={tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
