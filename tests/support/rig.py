"""A model monitor fed through the real pipeline (Pipeline -> ModelMonitor -> IncidentWatch) on
synthetic traffic, with an RCA worker: the rig of the analysis and retraining tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from agent.config import RCAConfig, build_config
from agent.incidents.store import IncidentStore
from agent.incidents.watch import IncidentWatch
from agent.ingest.broker import RecordBatch
from agent.monitor.model import ModelMonitor
from agent.monitor.reference import ModelReference
from agent.pipeline import Pipeline
from agent.rca.worker import RCAWorker
from agent.state.counters import Counters

__all__ = ["FEATURES", "Rig", "frame"]

NUMERIC = [f"x{j}" for j in range(4)]
FEATURES = NUMERIC + ["c0"]
T0 = 1_790_000_000


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(n, len(NUMERIC)))
    p = 1.0 / (1.0 + np.exp(-2.0 * x[:, :2].sum(axis=1)))
    cols: dict[str, Any] = {name: x[:, j] for j, name in enumerate(NUMERIC)}
    cols["c0"] = rng.choice(["a", "b", "c"], n)
    cols["y"] = (rng.random(n) < p).astype(int)
    cols["y_pred"] = (p > 0.5).astype(int)
    cols["y_proba"] = p
    return pd.DataFrame(cols)


class Rig:
    """A monitor fed through the real pipeline, its incident rules and an RCA worker."""

    def __init__(self, tmp_path: Path, rca: RCAConfig | None = None, model: dict[str, Any] | None = None,
                 on_final: Any = None) -> None:
        ref = tmp_path / "ref.parquet"
        frame(6000, 1).to_parquet(ref)
        self.cfg = build_config({"state_dir": str(tmp_path / "state"), "models": {"m": {
            "task": "binary_classification", "reference": str(ref), "target": "y", "prediction": "y_pred",
            "score": "y_proba", "features": FEATURES, "segments": ["c0"], "window": {"size": 1000},
            **(model or {})}}})
        self.counters = Counters()
        self.store = IncidentStore(self.counters, rca=True)
        holder: dict[str, IncidentWatch] = {}
        self.mon = ModelMonitor(ModelReference.load("m", self.cfg.models["m"]), self.counters,
                                on_result=lambda r: holder["w"].observe(r), on_final=on_final)
        holder["w"] = IncidentWatch(self.cfg.models, {"m": self.mon}, self.store)
        self.pipe = Pipeline({"m": self.mon}, self.counters, "predictions", "labels")
        self.done: list[tuple[str, str, float]] = []
        self.worker = RCAWorker(self.store, {"m": self.mon}, rca or RCAConfig(n_boot=50),
                                on_done=lambda *a: self.done.append(a))
        self.sent = 0

    def feed(self, traffic: pd.DataFrame, step: int = 500) -> None:
        rows = traffic[FEATURES].to_numpy(dtype=object).tolist()
        for lo in range(0, len(traffic), step):
            hi = min(lo + step, len(traffic))
            preds = [orjson.dumps({"prediction_id": f"p{self.sent + i}", "model": "m", "timestamp": T0 + self.sent + i,
                                   "features": dict(zip(FEATURES, rows[i])), "prediction": int(traffic.y_pred.iloc[i]),
                                   "score": float(traffic.y_proba.iloc[i])}) for i in range(lo, hi)]
            labs = [orjson.dumps({"prediction_id": f"p{self.sent + i}", "model": "m", "label": int(traffic.y.iloc[i]),
                                  "timestamp": T0 + self.sent + i}) for i in range(lo, hi)]
            offs = np.arange(self.sent + lo, self.sent + hi)
            n = hi - lo
            self.pipe.process([RecordBatch("predictions", 0, offs, np.full(n, T0 * 1000), [None] * n, preds),
                               RecordBatch("labels", 0, offs, np.full(n, T0 * 1000), [None] * n, labs)])
            self.pipe.evaluate()
            self.worker.tick()
        self.sent += len(traffic)

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.worker.idle() or self.store.rca_due():
            self.worker.tick()
            assert time.monotonic() < deadline, f"analyses still due: {self.store.rca_due()}"
            time.sleep(0.05)

    def incidents(self) -> list[dict[str, Any]]:
        return self.store.get("")[1]


