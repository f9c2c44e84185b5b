"""ModelMonitor: windows, label join, outcome counts, and per-window verdicts against scipy/sklearn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, roc_auc_score

from agent.config import build_config
from agent.state.counters import Counters
from agent.decode.decoder import Labels, Predictions
from tests.support.decode import decode_labels, decode_predictions
from agent.monitor.model import ModelMonitor, WindowResult
from agent.monitor.reference import ModelReference

MODEL = "m"
NUMERIC = ["x1", "x2"]
CATS = ["c1", "c2"]
T0 = 1_790_000_000.0  # epoch seconds


def reference_frame(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.gamma(2.0, 3.0, n)
    c1 = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    c2 = rng.choice(["u", "v"], n)
    p = 1 / (1 + np.exp(-(x1 + (c1 == "a") - 0.5)))
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "c1": c1, "c2": c2, "y": y, "yhat": (p > 0.5).astype(int), "p": p})


def make_monitor(tmp_path: Path, fmt: str = "parquet", *, window: dict[str, Any] | None = None,
                 segments: list[str] | None = None, ttl_s: float = 7 * 86400.0, max_pending: int = 1_000_000,
                 min_support: int = 10) -> ModelMonitor:
    frame = reference_frame()
    path = tmp_path / f"ref.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    cfg = build_config({"models": {MODEL: {
        "task": "binary_classification", "reference": path.name, "target": "y", "prediction": "yhat",
        "score": "p", "features": NUMERIC + CATS, "window": window or {"size": 100, "label_retention": 2},
        "segments": ["c1"] if segments is None else segments, "performance": {"min_support": min_support},
    }}}, tmp_path)
    ref = ModelReference.load(MODEL, cfg.models[MODEL])
    return ModelMonitor(ref, Counters(), ttl_s=ttl_s, max_pending_labels=max_pending)


def traffic(n: int, seed: int, *, shift: float = 0.0, start: int = 0, t0: float = T0, dt: float = 1.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.gamma(2.0, 3.0, n)
    c1 = rng.choice(["a", "b", "c"], n, p=[0.2, 0.3, 0.5] if shift else [0.5, 0.3, 0.2])
    c2 = rng.choice(["u", "v"], n)
    p = 1 / (1 + np.exp(-(x1 + (c1 == "a") - 0.5)))
    y = (rng.random(n) < p).astype(int)
    return [{"prediction_id": f"p{start + i}", "model": MODEL, "timestamp": t0 + (start + i) * dt,
             "features": {"x1": float(x1[i]), "x2": float(x2[i]), "c1": str(c1[i]), "c2": str(c2[i])},
             "prediction": int(p[i] > 0.5), "score": float(round(p[i], 6)), "_y": int(y[i])} for i in range(n)]


def preds(records: list[dict]) -> Predictions:
    values = [orjson.dumps({k: v for k, v in r.items() if k != "_y"}) for r in records]
    groups, rejected = decode_predictions(values, np.zeros(len(values), dtype=np.int64), {MODEL})
    assert rejected == []
    return groups[MODEL]


def labels(records: list[dict], delay_s: float = 60.0) -> Labels:
    values = [orjson.dumps({"prediction_id": r["prediction_id"], "model": MODEL, "label": r["_y"],
                            "timestamp": r["timestamp"] + delay_s}) for r in records]
    groups, rejected = decode_labels(values, np.zeros(len(values), dtype=np.int64), {MODEL})
    assert rejected == []
    return groups[MODEL]


def events(mon: ModelMonitor, stream: str, outcome: str) -> int:
    return mon.counters.events[(MODEL, stream, outcome)]


# ---------------------------------------------------------------------------------- windows


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_count_windows_close_exactly_every_size_predictions(tmp_path: Path, fmt: str) -> None:
    mon = make_monitor(tmp_path, fmt)
    recs = traffic(1_000, 1)
    results: list[WindowResult] = []
    for lo, hi in [(0, 70), (70, 250), (250, 251), (251, 999), (999, 1000)]:  # batches straddle boundaries
        results += mon.add_predictions(preds(recs[lo:hi]))
    opened = [r for r in results if not r.final]
    assert [r.window_id for r in opened] == list(range(10))
    assert all(r.n == 100 for r in opened)
    assert mon.counters.windows[MODEL] == 10
    assert mon.open == {}  # the 1000th prediction closed the tenth window
    for r in opened:  # observed event-time bounds of exactly the rows of that window
        assert (r.start_s, r.end_s) == (T0 + 100 * r.window_id, T0 + 100 * r.window_id + 99)
    assert events(mon, "predictions", "ok") == 1_000


def test_event_time_windows_close_on_watermark_and_count_late(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, window={"duration": "60s", "label_retention": 2})
    base = 1_790_000_040.0  # bucket boundary at 1_790_000_040 (divisible by 60)
    first = traffic(30, 1, t0=base, dt=2.0)  # 60 s of traffic: exactly bucket 0
    res = mon.add_predictions(preds(first))
    assert res == [] and len(mon.open) == 1
    nxt = traffic(10, 2, start=30, t0=base, dt=2.0)  # bucket 1; watermark = last event = base+78 > base+60
    res = mon.add_predictions(preds(nxt))
    assert [(r.window_id, r.n, r.start_s, r.end_s) for r in res] == [(0, 30, base, base + 60)]
    late = traffic(5, 3, start=100, t0=base - 100 * 2.0, dt=2.0)  # event times inside closed bucket 0
    late += traffic(2, 4, start=200, t0=base - 200 * 2.0 - 3600, dt=2.0)  # an hour before it
    res = mon.add_predictions(preds(late))
    assert res == []
    assert events(mon, "predictions", "late") == 7
    assert events(mon, "predictions", "ok") == 40
    assert sum(w.n for w in mon.open.values()) == 10


def test_allowed_lateness_delays_close(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, window={"duration": "60s", "allowed_lateness": "30s"})
    base = 1_790_000_040.0
    assert mon.add_predictions(preds(traffic(30, 1, t0=base, dt=2.0))) == []
    assert mon.add_predictions(preds(traffic(10, 2, start=30, t0=base, dt=2.0))) == []  # watermark base+48
    late_ok = traffic(3, 3, start=100, t0=base - 100 * 2.0 + 10, dt=2.0)  # bucket 0, still open
    assert mon.add_predictions(preds(late_ok)) == []
    res = mon.add_predictions(preds(traffic(1, 4, start=60, t0=base, dt=2.0)))  # event base+120
    assert [(r.window_id, r.n) for r in res] == [(0, 33)]
    assert events(mon, "predictions", "late") == 0


# ---------------------------------------------------------------------------------- join


def test_label_before_prediction_joins_on_arrival(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path)
    recs = traffic(100, 1)
    mon.add_labels(labels(recs[:40]))
    assert len(mon.pending) == 40
    assert events(mon, "labels", "ok") == 0
    res = mon.add_predictions(preds(recs))
    assert mon.pending == {}
    assert events(mon, "labels", "ok") == 40
    [r] = res
    assert r.label_coverage == pytest.approx(0.4)
    y = np.array([x["_y"] for x in recs[:40]])
    s = np.array([x["score"] for x in recs[:40]])
    assert r.performance["all"]["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r.support["all"] == 40


def test_duplicates_counted_not_double_counted(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path)
    recs = traffic(100, 1)
    mon.add_predictions(preds(recs[:60] + recs[10:20]))  # in-batch duplicates
    mon.add_predictions(preds(recs[50:100]))  # 50..59 already seen
    assert events(mon, "predictions", "duplicate") == 20
    assert events(mon, "predictions", "ok") == 100
    assert mon.counters.windows[MODEL] == 1
    assert mon.latest is not None and mon.latest.n == 100
    # labels: in-batch duplicate, cross-batch duplicate, and duplicate of a pending label
    extra = traffic(5, 9, start=500)
    mon.add_labels(labels(recs[:30] + recs[:5] + extra + extra[:2]))
    mon.add_labels(labels(recs[20:40]))
    assert events(mon, "labels", "ok") == 40
    assert events(mon, "labels", "duplicate") == 5 + 2 + 10
    assert len(mon.pending) == 5
    [r] = mon.flush_performance()
    assert r.support["all"] == 40 and r.label_coverage == pytest.approx(0.4)


def test_pending_labels_expire_by_ttl(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, ttl_s=3600.0)
    orphans = traffic(10, 1, start=10_000, t0=T0 - 10_000)
    mon.add_labels(labels(orphans, delay_s=0.0))
    assert len(mon.pending) == 10 and events(mon, "labels", "expired") == 0
    # the clock moves on by more than the TTL (on either stream)
    mon.add_predictions(preds(traffic(5, 2, t0=T0 + 7200.0)))
    assert len(mon.pending) == 0
    assert events(mon, "labels", "expired") == 10


def test_pending_labels_expire_beyond_max_pending(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, max_pending=25)
    orphans = traffic(40, 1, start=10_000)
    mon.add_labels(labels(orphans[:30]))
    mon.add_labels(labels(orphans[30:]))
    assert len(mon.pending) == 25
    assert events(mon, "labels", "expired") == 15
    assert list(mon.pending)[0] == "p10015"  # oldest dropped first


def test_memory_bound_of_the_join_index(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, window={"size": 50, "label_retention": 3}, segments=[])
    recs = traffic(2_000, 1)
    peak = 0
    for lo in range(0, 2_000, 37):
        mon.add_predictions(preds(recs[lo:lo + 37]))
        mon.add_labels(labels(recs[max(0, lo - 100):lo - 60]))  # late labels, some beyond retention
        peak = max(peak, len(mon.join.rows))
    assert peak <= 3 * 50 + 50
    assert len(mon.retained) == 3
    assert mon.counters.windows[MODEL] == 40


# ---------------------------------------------------------------------------------- verdicts


def window_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{**r["features"], "y": r["_y"], "score": r["score"], "pred": r["prediction"]} for r in records])


def scipy_drift(ref: pd.DataFrame, win: pd.DataFrame, mon: ModelMonitor) -> dict[str, tuple[float, float]]:
    """Raw (statistic, p-value) per feature: ks_2samp for numeric, chi2_contingency for categorical."""
    out = {}
    for f in NUMERIC:
        r = stats.ks_2samp(ref[f].to_numpy(), win[f].to_numpy())
        out[f] = (float(r.statistic), float(r.pvalue))
    for f in CATS:
        cats = list(mon.ref.drift.features[f].binner.categories)
        rc = ref[f].astype(str).value_counts().reindex(cats, fill_value=0).to_numpy()
        wc = win[f].astype(str).value_counts().reindex(cats, fill_value=0).to_numpy()
        table = np.vstack([np.r_[rc, 0], np.r_[wc, (~win[f].isin(cats)).sum()]])
        table = table[:, table.sum(axis=0) > 0]
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        out[f] = (float(chi2), float(p))
    return out


@pytest.mark.parametrize("shift", [0.0, 0.6])
def test_window_drift_equals_scipy(tmp_path: Path, shift: float) -> None:
    mon = make_monitor(tmp_path, window={"size": 300, "label_retention": 2})
    recs = traffic(600, 5, shift=shift)
    results = []
    for lo in range(0, 600, 110):
        results += mon.add_predictions(preds(recs[lo:lo + 110]))
    closed = [r for r in results if not r.final]
    assert [r.window_id for r in closed] == [0, 1]
    ref = mon.ref.frame
    for r in closed:
        win = window_frame(recs[300 * r.window_id: 300 * (r.window_id + 1)])
        expect = scipy_drift(ref, win, mon)
        got = {d.feature: d for d in r.drift.features}
        assert list(got) == NUMERIC + CATS
        raw_p = [expect[f][1] for f in got]
        adjusted = stats.false_discovery_control(raw_p, method="bh")
        for (f, d), p_adj in zip(got.items(), adjusted):
            assert d.method == ("ks" if f in NUMERIC else "chi2")
            assert d.statistic == pytest.approx(expect[f][0], rel=1e-9, abs=1e-12)
            assert d.p_value == pytest.approx(p_adj, rel=1e-6, abs=1e-12)
            assert d.drifted == (p_adj < 0.05 and d.effect_size >= 0.1)
        if shift:
            assert got["x1"].drifted and got["c1"].drifted
            assert not got["x2"].drifted


def test_window_performance_equals_sklearn_overall_and_per_segment(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, window={"size": 400, "label_retention": 2})
    recs = traffic(800, 7)
    rng = np.random.default_rng(3)
    labelled = [r for r in recs if rng.random() < 0.6]
    for lo in range(0, 800, 150):  # labels trail predictions by a batch
        mon.add_predictions(preds(recs[lo:lo + 150]))
        late = [r for r in labelled if lo - 150 <= int(r["prediction_id"][1:]) < lo]
        if late:
            mon.add_labels(labels(late))
    mon.add_labels(labels([r for r in labelled if int(r["prediction_id"][1:]) >= 600]))
    final = {r.window_id: r for r in mon.flush_performance()}
    assert sorted(final) == [0, 1]
    for wid, res in final.items():
        rows = window_frame([r for r in labelled if 400 * wid <= int(r["prediction_id"][1:]) < 400 * (wid + 1)])
        assert res.support["all"] == len(rows)
        assert res.label_coverage == pytest.approx(len(rows) / 400)
        assert res.performance["all"]["roc_auc"] == pytest.approx(roc_auc_score(rows["y"], rows["score"]), abs=1e-12)
        assert res.performance["all"]["accuracy"] == pytest.approx(accuracy_score(rows["y"], rows["pred"]), abs=1e-12)
        for c, seg in rows.groupby("c1"):
            key = f"c1={c}"
            assert res.support[key] == len(seg)
            if len(seg) >= mon.ref.config.performance.min_support and seg["y"].nunique() == 2:
                assert res.performance[key]["roc_auc"] == pytest.approx(roc_auc_score(seg["y"], seg["score"]), abs=1e-12)


def test_string_class_labels(tmp_path: Path) -> None:
    """A classifier whose classes are strings: labels and predictions join and are scored."""
    frame = reference_frame()
    frame["y"] = np.where(frame["y"] == 1, "yes", "no")
    frame["yhat"] = np.where(frame["yhat"] == 1, "yes", "no")
    path = tmp_path / "ref.parquet"
    frame.to_parquet(path)
    cfg = build_config({"models": {MODEL: {"task": "binary_classification", "reference": str(path), "target": "y",
                                           "prediction": "yhat", "features": NUMERIC + CATS,
                                           "window": {"size": 100}}}})
    mon = ModelMonitor(ModelReference.load(MODEL, cfg.models[MODEL]), Counters())
    recs = traffic(100, 2)
    for r in recs:
        r["prediction"] = "yes" if r["prediction"] else "no"
        r["_y"] = "yes" if r["_y"] else "no"
    mon.add_labels(labels(recs))
    [res] = mon.add_predictions(preds(recs))
    y = [r["_y"] for r in recs]
    assert res.performance["all"]["accuracy"] == pytest.approx(accuracy_score(y, [r["prediction"] for r in recs]))


def test_label_outside_classes_does_not_crash(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path)
    recs = traffic(100, 1)
    recs[0]["_y"] = 7  # a class the reference never had
    recs[1]["prediction"] = 3
    mon.add_labels(labels(recs[:50]))
    [res] = mon.add_predictions(preds(recs))
    assert res.support["all"] == 48


def test_events_total_equals_records_fed(tmp_path: Path) -> None:
    mon = make_monitor(tmp_path, window={"size": 64, "label_retention": 2}, max_pending=30, ttl_s=500.0)
    recs = traffic(1_500, 11)
    rng = np.random.default_rng(0)
    fed = {"predictions": 0, "labels": 0}
    for lo in range(0, 1_500, 90):
        batch = recs[lo:lo + 90] + [recs[i] for i in rng.integers(0, lo + 90, 5)]  # with duplicates
        mon.add_predictions(preds(batch))
        fed["predictions"] += len(batch)
        lab = [r for r in recs[max(0, lo - 300):lo + 120] if rng.random() < 0.3]  # early, late, repeated
        if lab:
            mon.add_labels(labels(lab))
            fed["labels"] += len(lab)
    mon.add_labels(labels(traffic(3, 1, start=99_999, t0=T0 + 10_000)))  # advances the clock past the TTL
    fed["labels"] += 3
    mon.add_predictions(preds(traffic(1, 1, start=77_777, t0=T0 + 10_000)))
    fed["predictions"] += 1
    for stream in fed:
        outcomes = {k[2]: v for k, v in mon.counters.events.items() if k[1] == stream}
        assert sum(outcomes.values()) + (len(mon.pending) if stream == "labels" else 0) == fed[stream], outcomes
    assert events(mon, "labels", "expired") > 0 and events(mon, "labels", "duplicate") > 0
