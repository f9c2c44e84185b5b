"""Multiclass models end to end through the monitor: `scores` ({class: probability}) from the
message contract reach the window performance (one-vs-rest ROC AUC, log loss) and survive a
checkpoint round trip. Checked against scikit-learn on the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from agent.state.checkpoint import CheckpointStore
from agent.config import build_config
from agent.state.counters import Counters
from tests.support.decode import decode_labels, decode_predictions
from agent.monitor.model import ModelMonitor
from agent.monitor.reference import ModelReference

MODEL = "mc"
K = 3


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    logits = np.column_stack([x, -x, np.zeros(n)]) + rng.normal(scale=0.8, size=(n, K))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(K, p=row) for row in p])
    return pd.DataFrame({"x": x, "y": y, "yhat": p.argmax(axis=1), **{f"p{k}": p[:, k] for k in range(K)}})


def _monitor(tmp_path: Path, counters: Counters | None = None) -> ModelMonitor:
    path = tmp_path / "ref.parquet"
    if not path.exists():
        _frame(3000, 1).to_parquet(path)
    cfg = build_config({"models": {MODEL: {
        "task": "multiclass_classification", "reference": str(path), "target": "y", "prediction": "yhat",
        "features": ["x"], "window": {"size": 500, "label_retention": 10}}}})
    return ModelMonitor(ModelReference.load(MODEL, cfg.models[MODEL]), counters or Counters())


def _feed(mon: ModelMonitor, frame: pd.DataFrame) -> None:
    preds = [orjson.dumps({"prediction_id": f"r{i}", "model": MODEL, "features": {"x": float(r.x)},
                           "prediction": int(r.yhat), "timestamp": 1.7e9 + i,
                           "scores": {str(k): float(getattr(r, f"p{k}")) for k in range(K)}})
             for i, r in enumerate(frame.itertuples())]
    labels = [orjson.dumps({"prediction_id": f"r{i}", "model": MODEL, "label": int(y), "timestamp": 1.7e9 + i})
              for i, y in enumerate(frame["y"])]
    ts = np.zeros(len(preds), dtype=np.int64)
    for lo in range(0, len(preds), 250):
        p, rej = decode_predictions(preds[lo:lo + 250], ts[lo:lo + 250], {MODEL})
        assert not rej
        mon.add_predictions(p[MODEL])
        lab, rej = decode_labels(labels[lo:lo + 250], ts[lo:lo + 250], {MODEL})
        assert not rej
        mon.add_labels(lab[MODEL])


def test_multiclass_scores_give_ovr_roc_auc_and_log_loss_equal_to_sklearn(tmp_path: Path) -> None:
    mon = _monitor(tmp_path)
    frame = _frame(1500, 2)
    _feed(mon, frame)
    results = [mon.judge.judge(w, final=False) for w in mon.retained]
    assert len(results) == 3
    for res, lo in zip(results, range(0, 1500, 500)):
        part = frame.iloc[lo:lo + 500]
        proba = part[[f"p{k}" for k in range(K)]].to_numpy()
        perf = res.performance["all"]
        assert perf["roc_auc"] == pytest.approx(roc_auc_score(part["y"], proba, multi_class="ovr", average="macro"), abs=1e-12)
        assert perf["log_loss"] == pytest.approx(log_loss(part["y"], proba, labels=list(range(K))), rel=1e-9)


def test_multiclass_scores_survive_a_checkpoint(tmp_path: Path) -> None:
    counters = Counters()
    mon = _monitor(tmp_path, counters)
    _feed(mon, _frame(1000, 3))
    store = CheckpointStore(tmp_path / "state")
    store.save({("p", 0): 1000}, counters, {MODEL: mon})
    cp = store.load()
    fresh = _monitor(tmp_path, cp.counters)
    store.restore(cp, {MODEL: fresh})
    before = [mon.judge.judge(w, final=False).performance for w in mon.retained]
    after = [fresh.judge.judge(w, final=False).performance for w in fresh.retained]
    assert before == after and "roc_auc" in after[0]["all"]


def test_scores_out_of_range_are_rejected_with_the_field_named() -> None:
    bad = orjson.dumps({"prediction_id": "a", "model": MODEL, "features": {}, "prediction": 1,
                        "scores": {"0": 1.5, "1": 0.2}})
    _, rej = decode_predictions([bad], np.zeros(1, dtype=np.int64), {MODEL})
    assert len(rej) == 1 and "'scores'" in rej[0].reason
