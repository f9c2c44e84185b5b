"""The agent's own incident rules on real window judgements (Pipeline -> ModelMonitor ->
IncidentWatch): quiet on clean traffic, one incident per planted cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from agent.config import build_config
from agent.incidents.store import IncidentStore
from agent.incidents.watch import IncidentWatch
from agent.ingest.broker import RecordBatch
from agent.monitor.model import ModelMonitor
from agent.monitor.reference import ModelReference
from agent.pipeline import Pipeline
from agent.state.counters import Counters

NUMERIC = [f"x{j}" for j in range(4)]
FEATURES = NUMERIC + ["c0"]


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(n, len(NUMERIC)))
    p = 1.0 / (1.0 + np.exp(-2.0 * x[:, :2].sum(axis=1)))
    cols: dict[str, Any] = {name: x[:, j] for j, name in enumerate(NUMERIC)}
    cols["x2"] = cols["x2"] + shift
    cols["x3"] = cols["x3"] + shift
    cols["c0"] = rng.choice(["a", "b", "c"], n)
    cols["y"] = (rng.random(n) < p).astype(int)
    cols["y_pred"] = (p > 0.5).astype(int)
    cols["y_proba"] = p
    return pd.DataFrame(cols)


def run(tmp_path: Path, traffic: pd.DataFrame, labels: np.ndarray | None = None,
        null_x0: float = 0.0, seed: int = 3) -> IncidentStore:
    ref = tmp_path / "ref.parquet"
    frame(6000, 1).to_parquet(ref)
    cfg = build_config({"models": {"m": {
        "task": "binary_classification", "reference": str(ref), "target": "y", "prediction": "y_pred",
        "score": "y_proba", "features": FEATURES, "window": {"size": 1000}}}})
    counters = Counters()
    store = IncidentStore(counters)
    watch: dict[str, IncidentWatch] = {}
    mon = ModelMonitor(ModelReference.load("m", cfg.models["m"]), counters, on_result=lambda r: watch["w"].observe(r))
    watch["w"] = IncidentWatch(cfg.models, {"m": mon}, store)
    pipe = Pipeline({"m": mon}, counters, "predictions", "labels")
    rng = np.random.default_rng(seed)
    rows = traffic[FEATURES].to_numpy(dtype=object).tolist()
    y = traffic["y"].to_numpy() if labels is None else labels
    preds = []
    for i in range(len(traffic)):
        feats = dict(zip(FEATURES, rows[i]))
        if null_x0 and rng.random() < null_x0:
            feats["x0"] = None
        preds.append(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": 1_790_000_000 + i,
                                   "features": feats, "prediction": int(traffic.y_pred[i]),
                                   "score": float(traffic.y_proba[i])}))
    labs = [orjson.dumps({"prediction_id": f"p{i}", "model": "m", "label": int(y[i]), "timestamp": 1_790_000_000 + i})
            for i in range(len(traffic))]
    step = 500
    for lo in range(0, len(preds), step):
        n = len(preds[lo:lo + step])
        pipe.process([RecordBatch("predictions", 0, np.arange(lo, lo + n), np.full(n, 1_790_000_000_000), [None] * n,
                                  preds[lo:lo + step]),
                      RecordBatch("labels", 0, np.arange(lo, lo + n), np.full(n, 1_790_000_000_000), [None] * n,
                                  labs[lo:lo + step])])
        pipe.evaluate()
    return store


def kinds(store: IncidentStore) -> list[str]:
    return sorted(i["kind"] for i in store.get("")[1])


@pytest.mark.parametrize("seed", [2, 5, 9])
def test_clean_traffic_opens_no_incident(tmp_path: Path, seed: int) -> None:
    assert kinds(run(tmp_path, frame(8000, seed))) == []


def test_covariate_shift_opens_one_data_drift_incident(tmp_path: Path) -> None:
    store = run(tmp_path, pd.concat([frame(3000, 2), frame(5000, 3, shift=1.5)], ignore_index=True))
    (inc,) = [i for i in store.get("")[1] if i["kind"] == "data_drift"]
    assert inc["status"] == "open" and inc["first_window"] == 3 and inc["last_window"] == 7
    assert set(inc["evidence"]["features"]) == {"x2", "x3"}
    assert store.counters.incidents[("m", "data_drift")] == 1


def test_flipped_labels_open_performance_and_concept_incidents(tmp_path: Path) -> None:
    traffic = frame(8000, 2)
    rng = np.random.default_rng(0)
    y = traffic["y"].to_numpy().copy()
    late = np.arange(len(y)) >= 3000
    flip = late & (rng.random(len(y)) < 0.45)
    y[flip] = 1 - y[flip]
    store = run(tmp_path, traffic, labels=y)
    got = {i["kind"]: i for i in store.get("")[1]}
    assert "data_drift" not in got  # the inputs did not move
    perf = got["performance_drop"]
    assert perf["evidence"]["metric"] == "roc_auc"
    assert perf["evidence"]["interval"][1] < perf["evidence"]["reference"]
    assert perf["first_window"] == 3
    assert "concept_drift" in got


def test_a_broken_upstream_join_opens_data_quality_naming_the_feature(tmp_path: Path) -> None:
    store = run(tmp_path, frame(8000, 2), null_x0=0.3)
    (inc,) = [i for i in store.get("")[1] if i["kind"] == "data_quality"]
    assert inc["evidence"]["feature"] == "x0" and inc["evidence"]["skew"] == "null"
    assert 0.25 < inc["evidence"]["rate"] < 0.35


def test_a_stream_detector_alone_opens_no_concept_incident(tmp_path: Path) -> None:
    """Page-Hinkley and friends fire on stable error streams now and then (seen in the demo before
    any drift): evidence when the conditional test agrees, never the trigger on their own."""
    from agent.incidents.rules import IncidentRules, Observation

    store = run(tmp_path, frame(2000, 2))
    mon_results = [i for i in store.get("")[1]]
    assert mon_results == []
    ref = tmp_path / "ref.parquet"
    cfg = build_config({"models": {"m": {"task": "binary_classification", "reference": str(ref), "target": "y",
                                         "prediction": "y_pred", "score": "y_proba", "features": FEATURES}}})
    mon = ModelMonitor(ModelReference.load("m", cfg.models["m"]), Counters())
    rules = IncidentRules(mon.ref, cfg.models["m"].incidents, mon.classes)
    from agent.monitor.judgement import WindowResult
    from detectors.drift import DatasetDriftReport

    base = dict(model="m", start_s=0.0, end_s=1.0, n=1000, drift=DatasetDriftReport((), (), 1, 1000),
                prediction_drift=None, performance={}, support={}, label_coverage=1.0, final=False, provisional=False)
    quiet, _ = rules.evaluate(WindowResult(window_id=0, **base), Observation(stream_detectors={"page_hinkley": True}))
    assert [f.kind for f in quiet] == []
    cond = {"kind": "concept_drift", "realized_error_window": 0.3, "expected_error_window": 0.1}
    loud, _ = rules.evaluate(WindowResult(window_id=1, conditional={"conditional": cond}, **base),
                             Observation(stream_detectors={"page_hinkley": True}))
    assert [f.kind for f in loud] == ["concept_drift"] and loud[0].evidence["stream_detectors"] == ["page_hinkley"]
