"""The demo's simulated serving stack: data, model, and the records it sends."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from agent.demo.serving import (
    CATEGORICAL,
    FEATURES,
    TARGET,
    ServingSimulator,
    build_reference,
    make_dataset,
    train_model,
)

WALL0 = 1_800_000_000.0  # fake epoch seconds at fake monotonic time 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now


class FakeStop(threading.Event):
    """A stop event whose wait advances the fake clock instead of sleeping; sets itself at `at`."""

    def __init__(self, clock: FakeClock, at: float = float("inf")) -> None:
        super().__init__()
        self.clock, self.at = clock, at

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0, "the simulator must never spin or block forever"
        self.clock.waits.append(timeout)
        self.clock.now += timeout
        if self.clock.now >= self.at:
            self.set()
        return self.is_set()


class ListSink:
    """Keeps what was sent, with the (fake) clock time of each send."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.records: list[tuple[str, bytes, bytes, float]] = []
        self.flushes = 0

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, value, self.clock.now if self.clock else 0.0))

    def flush(self) -> None:
        self.flushes += 1

    def topic(self, name: str) -> list[tuple[int, bytes, dict, float]]:
        """(position in the send order, key, decoded value, send time) of one topic's records."""
        return [(i, k, orjson.loads(v), t) for i, (tp, k, v, t) in enumerate(self.records) if tp == name]


def _epoch(stamp: str) -> float:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp).timestamp()


@pytest.fixture(scope="module")
def model():
    return train_model(make_dataset(10_000, seed=1), seed=0)


def test_dataset_is_deterministic_by_seed():
    a, b = make_dataset(2_000, seed=7, drift=0.3), make_dataset(2_000, seed=7, drift=0.3)
    pd.testing.assert_frame_equal(a, b)
    assert not make_dataset(2_000, seed=8, drift=0.3).equals(a)
    assert list(a.columns) == [*FEATURES, TARGET]
    assert set(a[TARGET].unique()) == {0, 1}
    for name, levels in CATEGORICAL.items():
        assert set(a[name].unique()) == set(levels)
    assert a["loan_length"].dtype == np.int64
    with pytest.raises(ValueError, match="drift"):
        make_dataset(10, seed=0, drift=1.5)


def test_drift_moves_inputs():
    before, after = make_dataset(20_000, seed=3), make_dataset(20_000, seed=3, drift=1.0)
    assert after["income"].mean() < 0.8 * before["income"].mean()
    share = lambda f: (f["employment"] == "self-employed").mean()  # noqa: E731
    assert share(after) > share(before) + 0.15
    assert (after["region"] == "west").mean() > (before["region"] == "west").mean() + 0.2


def test_model_beats_baselines_and_degrades_under_drift(model):
    clean, drifted = make_dataset(10_000, seed=2), make_dataset(10_000, seed=2, drift=1.0)
    auc_clean = roc_auc_score(clean[TARGET], model.predict_proba(clean))
    auc_drifted = roc_auc_score(drifted[TARGET], model.predict_proba(drifted))
    best_single = max(
        max(roc_auc_score(clean[TARGET], clean[c]), roc_auc_score(clean[TARGET], -clean[c]))
        for c in ("income", "debt_ratio", "loan_length", "age")
    )
    assert auc_clean > 0.75
    assert auc_clean > best_single + 0.03
    assert auc_drifted < auc_clean - 0.05
    # the concept moved for the self-employed: that segment loses most
    se = drifted["employment"] == "self-employed"
    auc_se = roc_auc_score(drifted.loc[se, TARGET], model.predict_proba(drifted[se]))
    assert auc_se < auc_drifted


def test_training_is_deterministic_by_seed():
    frame, probe = make_dataset(2_000, seed=4), make_dataset(500, seed=5)
    a, b = train_model(frame, seed=3, epochs=2), train_model(frame, seed=3, epochs=2)
    np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))


def test_build_reference(model):
    frame = make_dataset(1_000, seed=6)
    ref = build_reference(model, frame)
    assert list(ref.columns) == [*FEATURES, TARGET, "y_pred", "y_pred_proba"]
    assert ref["y_pred_proba"].between(0, 1).all()
    np.testing.assert_array_equal(ref["y_pred"], (ref["y_pred_proba"] >= 0.5).astype(int))
    pd.testing.assert_frame_equal(ref[[*FEATURES, TARGET]], frame)


def _simulate(model, n=4_000, rate=1_000.0, delay=1.5, share=0.9, stop_at=float("inf")):
    clock = FakeClock()
    sink = ListSink(clock)
    sim = ServingSimulator(
        model, sink, "preds", "labels", model_name="car-loan", rate=rate, label_delay_s=delay,
        label_share=share, drift_after=n // 2, drift_ramp=0, seed=11, clock=clock,
        wall_clock=clock.wall,
    )
    sim.run(n, FakeStop(clock, stop_at))
    return sim, sink, clock


def test_records_follow_the_message_contract(model):
    n, rate, delay = 4_000, 1_000.0, 1.5
    sim, sink, clock = _simulate(model, n=n, rate=rate, delay=delay)
    preds, labels = sink.topic("preds"), sink.topic("labels")
    assert sim.sent_predictions == len(preds) == n
    assert sim.sent_labels == len(labels)
    assert sink.flushes >= 1

    ids = [v["prediction_id"] for _, _, v, _ in preds]
    assert len(set(ids)) == n
    for _, key, v, sent_at in preds:
        assert set(v) == {"prediction_id", "model", "model_version", "timestamp", "features",
                          "prediction", "score"}
        assert key == v["prediction_id"].encode() and isinstance(v["prediction_id"], str)
        assert v["model"] == "car-loan" and isinstance(v["model_version"], str)
        assert set(v["features"]) == set(FEATURES)
        assert v["prediction"] in (0, 1) and 0.0 <= v["score"] <= 1.0
        assert v["prediction"] == int(v["score"] >= 0.5)
        assert _epoch(v["timestamp"]) - WALL0 <= sent_at + 1e-3  # never stamped in the future

    # events are paced at `rate`: the i-th prediction is not sent before i / rate
    order = {pid: j for j, pid in enumerate(ids)}
    for _, _, v, sent_at in preds:
        assert sent_at >= order[v["prediction_id"]] / rate - 1e-9
    assert clock.now == pytest.approx(n / rate + delay, abs=0.1)
    # no spinning: one wait per batch, plus label wake-ups at most every 50 ms
    assert all(w > 0 for w in clock.waits) and len(clock.waits) <= n / 500 + clock.now / 0.05 + 5

    pred_by_id = {v["prediction_id"]: (pos, v) for pos, _, v, _ in preds}
    label_ids = [v["prediction_id"] for _, _, v, _ in labels]
    assert len(set(label_ids)) == len(label_ids)
    for pos, key, v, sent_at in labels:
        assert set(v) == {"prediction_id", "model", "label", "timestamp"}
        assert key == v["prediction_id"].encode() and v["label"] in (0, 1)
        pred_pos, pred = pred_by_id[v["prediction_id"]]  # only for sent predictions
        assert pos > pred_pos  # sent after its prediction
        assert _epoch(v["timestamp"]) - _epoch(pred["timestamp"]) == pytest.approx(delay, abs=2e-3)
        assert sent_at >= _epoch(v["timestamp"]) - WALL0 - 1e-3  # not before it is due
    assert len(labels) / n == pytest.approx(0.9, abs=0.03)


def test_features_shift_after_drift_after(model):
    n = 4_000
    sim, sink, _ = _simulate(model, n=n)
    frame = pd.DataFrame([v["features"] for _, _, v, _ in sink.topic("preds")])
    before, after = frame.iloc[: n // 2], frame.iloc[n // 2:]
    assert after["income"].mean() < 0.8 * before["income"].mean()
    self_employed = lambda f: (f["employment"] == "self-employed").mean()  # noqa: E731
    assert self_employed(after) > self_employed(before) + 0.1
    assert sim.current_drift == 1.0

    # labels are the generated outcomes: accuracy falls once the concept moves
    preds = {v["prediction_id"]: v["prediction"] for _, _, v, _ in sink.topic("preds")}
    pos = {v["prediction_id"]: j for j, (_, _, v, _) in enumerate(sink.topic("preds"))}
    hits = np.array([(pos[v["prediction_id"]] >= n // 2, preds[v["prediction_id"]] == v["label"])
                     for _, _, v, _ in sink.topic("labels")])
    assert hits[hits[:, 0] == 1, 1].mean() < hits[hits[:, 0] == 0, 1].mean() - 0.03


def test_stop_ends_run_and_drift_ramps(model):
    clock = FakeClock()
    sink = ListSink(clock)
    sim = ServingSimulator(model, sink, "p", "l", rate=2_000.0, label_delay_s=0.5, drift_after=1_000,
                           drift_ramp=2_000, seed=1, clock=clock, wall_clock=clock.wall)
    sim.run(None, FakeStop(clock, at=1.0))
    assert 1_500 <= sim.sent_predictions <= 2_000  # ~rate * 1 s, never ahead of schedule
    assert 0.2 < sim.current_drift < 0.6
    np.testing.assert_allclose(sim.drift_at(np.array([0, 1_000, 2_000, 3_000, 9_999])), [0, 0, 0.5, 1, 1])
    assert sink.flushes == 1


def test_simulator_validates_parameters(model):
    with pytest.raises(ValueError, match="rate"):
        ServingSimulator(model, ListSink(), "p", "l", rate=0)
    with pytest.raises(ValueError, match="label_share"):
        ServingSimulator(model, ListSink(), "p", "l", label_share=1.2)


def test_import_does_not_need_torch():
    code = "import sys, agent.demo.serving as s; s.make_dataset(10, 0); assert 'torch' not in sys.modules"
    root = Path(__file__).resolve().parents[4]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
