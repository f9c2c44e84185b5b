"""Performance metrics against scikit-learn, interval coverage, summaries and segments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.preprocessing import label_binarize

from detectors.performance import (
    ConfusionSummary,
    classification_metrics,
    classification_performance,
    delong_interval,
    regression_metrics,
    regression_performance,
    wilson_interval,
)
from detectors.segments import SegmentSpec, segment_performance


def binary_data(seed: int, n: int = 400, rounded: bool = True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1)
    s = s.round(2) if rounded else s
    return y, (s >= 0.5).astype(int), s


def multiclass_data(seed: int, n: int = 600, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k), n)
    p[np.arange(n), y] += rng.uniform(0, 0.8, n)
    p /= p.sum(axis=1, keepdims=True)
    return y, p.argmax(axis=1), p


def sk_ece(y, conf):
    prob_true, prob_pred = calibration_curve(y, conf, n_bins=10, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], conf, side="left"), minlength=10)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(y) * np.abs(prob_true - prob_pred)))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rounded", [True, False])
def test_binary_metrics_equal_sklearn(seed, rounded):
    y, yp, s = binary_data(seed, rounded=rounded)
    m = classification_metrics(y, yp, score=s)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yp), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(y, yp), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(y, yp), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, yp), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, s), abs=1e-12)
    assert m["ece"] == pytest.approx(sk_ece(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_metrics_equal_sklearn(seed):
    y, yp, p = multiclass_data(seed)
    m = classification_metrics(y, yp, scores=p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yp), abs=1e-12)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert m[name] == pytest.approx(fn(y, yp, average="macro"), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    ap = skm.average_precision_score(label_binarize(y, classes=range(4)), p, average="macro")
    assert m["pr_auc"] == pytest.approx(ap, abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    correct = (p.argmax(axis=1) == y).astype(int)
    assert m["ece"] == pytest.approx(sk_ece(correct, p.max(axis=1)), abs=1e-12)


def test_string_labels_and_label_order():
    y = np.array(["b", "a", "c", "a", "b", "c", "c"])
    yp = np.array(["b", "a", "a", "a", "c", "c", "b"])
    m = classification_metrics(y, yp, labels=["c", "a", "b"])
    assert m["f1"] == pytest.approx(skm.f1_score(y, yp, average="macro"))
    assert "roc_auc" not in m


def test_edge_single_class_and_zero_division():
    y = np.ones(20, dtype=int)
    s = np.linspace(0.1, 0.9, 20)
    m = classification_metrics(y, (s > 0.5).astype(int), score=s)
    assert np.isnan(m["roc_auc"])  # one class: undefined, not 0.5
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(skm.recall_score(y, (s > 0.5).astype(int)))
    y0 = np.zeros(20, dtype=int)
    m0 = classification_metrics(y0, np.zeros(20, dtype=int), score=s)
    assert np.isnan(m0["precision"]) and np.isnan(m0["recall"]) and np.isnan(m0["pr_auc"])
    assert np.isnan(skm.precision_score(y0, np.zeros(20, dtype=int), zero_division=np.nan))
    assert m0["accuracy"] == 1.0
    # multiclass with an undefined class: macro skips it, as sklearn's zero_division=np.nan
    yt, yp = np.array([0, 1, 1, 2]), np.array([0, 1, 0, 0])
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert classification_metrics(yt, yp)[name] == pytest.approx(
            fn(yt, yp, average="macro", zero_division=np.nan))


@pytest.mark.parametrize("bad", [
    dict(y_true=[0, 1], y_pred=[0]),
    dict(y_true=[0, 1], y_pred=[0, 1], score=[0.1]),
    dict(y_true=[0, 1], y_pred=[0, 2], labels=[0, 1]),
    dict(y_true=[0, 1, 2], y_pred=[0, 1, 2], score=[0.1, 0.2, 0.3]),
    dict(y_true=[0, 1], y_pred=[0, 1], score=[np.nan, 0.2]),
    dict(y_true=[], y_pred=[]),
])
def test_bad_inputs_raise(bad):
    with pytest.raises(ValueError):
        classification_metrics(**bad)


def test_bad_params_raise():
    y, yp, s = binary_data(0)
    for kw in (dict(confidence=1.5), dict(n_boot=-1), dict(min_support=-1), dict(metrics=["nope"])):
        with pytest.raises(ValueError):
            classification_performance(y, yp, score=s, **kw)


def test_regression_metrics_equal_sklearn():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 300)
    y[0] = 0.0
    yhat = y + rng.normal(0, 1, 300)
    m = regression_metrics(y, yhat)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, yhat)))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, yhat))
    r = regression_performance(y, yhat, n_boot=100)
    assert r["mae"].lower < r["mae"].value < r["mae"].upper


def test_performance_results_are_deterministic_and_bracket_value():
    y, yp, s = binary_data(1, n=500)
    a = classification_performance(y, yp, score=s, n_boot=100, seed=7)
    b = classification_performance(y, yp, score=s, n_boot=100, seed=7)
    assert a == b
    for r in a.values():
        assert r.lower <= r.value <= r.upper and r.n == 500 and r.support_ok
    assert (a["accuracy"].lower, a["accuracy"].upper) == wilson_interval((y == yp).sum(), 500)
    m = classification_performance(*multiclass_data(2)[:2], scores=multiclass_data(2)[2], n_boot=50)
    assert all(r.lower <= r.value <= r.upper for r in m.values())
    small = classification_performance(y[:10], yp[:10], score=s[:10], n_boot=0, min_support=30)
    assert not small["accuracy"].support_ok and np.isnan(small["log_loss"].lower)


def test_wilson_matches_statsmodels_formula():
    lo, hi = wilson_interval(8, 10, 0.95)
    assert (lo, hi) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)  # textbook Wilson values


def test_confidence_intervals_cover_at_nominal_rate():
    """Small simulation: binormal scores, shift 1 -> AUC = Phi(1/sqrt 2); threshold 0.5 accuracy known."""
    rng = np.random.default_rng(11)
    true_auc = norm.cdf(1 / np.sqrt(2))
    true_acc = 0.5 * norm.cdf(0.5) + 0.5 * norm.cdf(0.5)  # threshold at the midpoint 0.5 of means 0 and 1
    big_y = rng.integers(0, 2, 2_000_000)
    big_x = rng.normal(big_y.astype(float), 1.0)
    big_p = 1 / (1 + np.exp(-(big_x - 0.5)))  # the exact posterior for these classes
    true_ll = float(skm.log_loss(big_y, big_p))
    reps, n = 200, 300
    hits = {"accuracy": 0, "roc_auc": 0, "log_loss": 0}
    for _ in range(reps):
        y = rng.integers(0, 2, n)
        x = rng.normal(y.astype(float), 1.0)
        p = 1 / (1 + np.exp(-(x - 0.5)))
        r = classification_performance(y, (x >= 0.5).astype(int), score=p, n_boot=200,
                                       seed=int(rng.integers(1 << 30)), metrics=list(hits))
        for m, truth in (("accuracy", true_acc), ("roc_auc", true_auc), ("log_loss", true_ll)):
            hits[m] += r[m].lower <= truth <= r[m].upper
    for m, h in hits.items():
        assert 0.89 <= h / reps <= 0.99, (m, h / reps)


def test_delong_matches_mann_whitney_and_is_nan_for_one_class():
    y, _, s = binary_data(4)
    auc, lo, hi = delong_interval(s, y == 1)
    assert auc == pytest.approx(skm.roc_auc_score(y, s)) and lo < auc < hi
    assert np.isnan(delong_interval(s, np.ones(len(s), dtype=bool))[0])


def test_confusion_summary_merge_and_exact_on_grid_scores():
    y, yp, s = binary_data(5, n=1000)  # scores on a 0.01 grid -> histogram AUC is exact
    whole = ConfusionSummary.from_arrays(y, yp, score=s, labels=[0, 1])
    a = ConfusionSummary.from_arrays(y[:300], yp[:300], score=s[:300], labels=[0, 1])
    a += ConfusionSummary.from_arrays(y[300:], yp[300:], score=s[300:], labels=[0, 1])
    assert np.array_equal(a.confusion, whole.confusion) and np.array_equal(a.score_hist, whole.score_hist)
    exact = classification_metrics(y, yp, score=s)
    got = a.metrics()
    for m in exact:
        assert got[m] == pytest.approx(exact[m], abs=1e-9), m
    back = ConfusionSummary.from_state(json.loads(json.dumps(a.state())))
    assert back.metrics() == got
    r = a.results()
    assert r["roc_auc"].lower < r["roc_auc"].value < r["roc_auc"].upper


def test_confusion_summary_multiclass_close_and_merge_errors():
    y, yp, p = multiclass_data(6)
    summ = ConfusionSummary.from_arrays(y, yp, scores=p, labels=[0, 1, 2, 3])
    exact = classification_metrics(y, yp, scores=p)
    got = summ.metrics()
    for m in exact:
        assert got[m] == pytest.approx(exact[m], abs=2e-3), m
    with pytest.raises(ValueError):
        summ += ConfusionSummary.from_arrays([0, 1], [0, 1], score=[0.2, 0.8], labels=[0, 1])
    with pytest.raises(ValueError):
        ConfusionSummary.from_arrays([0, 1], [0, 1], score=[0.2, 0.8], labels=[0, 1], n_bins=1)


def segment_frame(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"age": rng.uniform(18, 80, n), "city": rng.choice(["a", "b", "c"], n, p=[0.6, 0.39, 0.01])})
    win = pd.DataFrame({"age": rng.uniform(10, 90, n), "city": rng.choice(["a", "b", "c", "z"], n)})
    win.loc[:9, "city"] = None
    return ref, win


def test_segment_spec_labels():
    ref, win = segment_frame()
    spec = SegmentSpec(("age", "city"), n_bins=4).fit(ref)
    assert len(spec.edges["age"]) == 3 and spec.categories["city"] == ("a", "b", "c")
    lab = spec.assign(win)
    ages = set(lab["age"])
    assert len(ages) == 4 and any(x.startswith("age=[-inf, ") for x in ages) and any(x.endswith(", inf)") for x in ages)
    assert {"city=a", "city=b", "city=c", "city=__unseen__", "city=__null__"} == set(lab["city"])
    with pytest.raises(ValueError):
        SegmentSpec(("nope",)).fit(ref)


def test_segment_metrics_equal_sklearn_per_segment():
    ref, win = segment_frame(1)
    y, yp, s = binary_data(8, n=len(win))
    spec = SegmentSpec(("age", "city"), n_bins=3).fit(ref)
    res = segment_performance(win, y, yp, s, spec=spec, min_support=100)
    lab = spec.assign(win)
    assert res[0].segment == "all" and res[0].n == len(win)
    names = [r.segment for r in res]
    assert len(names) == len(set(names))
    pair = [r for r in res if "&" in r.segment]
    assert pair and all(r.segment.startswith("age=") and "&city=" in r.segment for r in pair)
    for r in res[1:]:
        mask = np.ones(len(win), dtype=bool)
        for part in r.segment.split("&"):
            mask &= lab[part.split("=", 1)[0]] == part
        assert r.n == mask.sum() and r.support_ok == (r.n >= 100)
        assert r.metrics["accuracy"].value == pytest.approx(skm.accuracy_score(y[mask], yp[mask]))
        if len(set(y[mask])) == 2:
            assert r.metrics["roc_auc"].value == pytest.approx(skm.roc_auc_score(y[mask], s[mask]))
        else:
            assert np.isnan(r.metrics["roc_auc"].value) and not r.metrics["roc_auc"].support_ok
    assert any(not r.support_ok for r in res)  # the null/rare segments are flagged, not dropped
