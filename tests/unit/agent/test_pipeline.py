"""Pipeline.process end to end in-process: the native scanner (agent.decode._scan) and the msgspec-only
route (what runs when the extension is not built) give the same windows, verdicts, counters and
dead letters on the same polls, garbage included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from agent.ingest.broker import RecordBatch
from agent.config import build_config
from agent.state.counters import Counters
from agent.monitor.model import ModelMonitor
from agent.pipeline import Pipeline
from agent.monitor.reference import ModelReference

NUMERIC = [f"x{j}" for j in range(6)]
CATEGORICAL = ["c0", "c1"]


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, len(NUMERIC)))
    cols: dict[str, object] = {name: x[:, j] for j, name in enumerate(NUMERIC)}
    cols["c0"] = rng.choice(["a", "b", "c"], n)
    cols["c1"] = rng.choice(["u", "v"], n)
    p = 1.0 / (1.0 + np.exp(-x[:, :2].sum(axis=1)))
    cols["y"] = (rng.random(n) < p).astype(int)
    cols["y_pred"] = (p > 0.5).astype(int)
    cols["y_proba"] = p
    return pd.DataFrame(cols)


def pipeline(ref: Path, native: bool) -> Pipeline:
    cfg = build_config({"models": {"m": {
        "task": "binary_classification", "reference": str(ref), "target": "y", "prediction": "y_pred",
        "score": "y_proba", "features": NUMERIC + CATEGORICAL, "window": {"size": 1000}, "segments": ["c0"]}}})
    counters = Counters()
    mon = ModelMonitor(ModelReference.load("m", cfg.models["m"]), counters)
    return Pipeline({"m": mon}, counters, "predictions", "labels", native=native)


def polls(traffic: pd.DataFrame) -> list[list[RecordBatch]]:
    rows = traffic[NUMERIC + CATEGORICAL].to_numpy(dtype=object).tolist()
    preds = [orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": 1_790_000_000 + i,
                           "features": dict(zip(NUMERIC + CATEGORICAL, rows[i])),
                           "prediction": int(traffic.y_pred[i]), "score": float(traffic.y_proba[i])})
             for i in range(len(traffic))]
    preds[10] = b"{broken"
    preds[11] = preds[11].replace(b'"x0":', b'"x0":"text",  "zz":')  # a type error and an unexpected key
    preds[12] = preds[12].replace(b'"model":"m"', b'"model":"other"')
    labels = [orjson.dumps({"prediction_id": f"p{i}", "model": "m", "label": int(traffic.y[i])})
              for i in range(0, len(traffic), 2)]
    out, step = [], 500
    for k, lo in enumerate(range(0, len(preds), step)):
        poll = [RecordBatch("predictions", 0, np.arange(lo, lo + step), np.full(step, 1_790_000_000_000),
                            [None] * step, preds[lo:lo + step])]
        lab = labels[k * step // 2:(k + 1) * step // 2]
        poll.append(RecordBatch("labels", 0, np.arange(len(lab)), np.full(len(lab), 1_790_000_000_000),
                                [None] * len(lab), lab))
        out.append(poll)
    return out


def test_native_and_msgspec_routes_give_the_same_windows(tmp_path: Path) -> None:
    ref = tmp_path / "ref.parquet"
    frame(5000, 1).to_parquet(ref)
    traffic = pd.concat([frame(3000, 2), frame(3000, 3, shift=0.5)], ignore_index=True)
    batches = polls(traffic)
    runs = {}
    for native in (True, False):
        pipe = pipeline(ref, native)
        assert (pipe.decoder.route == "native") == native
        results, dead = [], []
        for poll in batches:
            r, d = pipe.process(poll)
            results.extend(r)
            dead.extend(d)
        runs[native] = (results, dead, pipe.counters)
    (res_n, dead_n, cnt_n), (res_e, dead_e, cnt_e) = runs[True], runs[False]
    assert [(d.offset, d.reason) for d in dead_n] == [(d.offset, d.reason) for d in dead_e]
    assert len(dead_n) == 2  # broken JSON, unknown model; the type error is a schema violation
    for attr in ("events", "schema", "skew"):
        assert getattr(cnt_n, attr) == getattr(cnt_e, attr), attr
    assert cnt_n.schema[("m", "x0", "type")] == 1 and cnt_n.schema[("m", "zz", "unexpected")] == 1
    assert len(res_n) == len(res_e) >= 5  # 5,998 valid predictions: five closed 1,000-row windows
    for a, b in zip(res_n, res_e):
        assert (a.window_id, a.n, a.final) == (b.window_id, b.n, b.final)
        assert a.drift.to_dict() == b.drift.to_dict()
        assert a.performance == b.performance
    assert any(r.drift.drifted for r in res_n)  # the shifted half is caught on both routes
