"""Multivariate drift: MMD permutation test and domain classifier."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from detectors.domain_classifier import DomainClassifierDrift, auc_mannwhitney
from detectors.mmd import MMDDrift, _mmd2_assignments, _permutation_masks

# Every device torch sees here: CPU always; CUDA too on a GPU host (the device check runs this
# file there), so the same assertions pin the CUDA path to the double-loop reference and to CPU.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _mmd2_loop(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) by explicit double loops."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-((a - b) ** 2).sum() / (2 * sigma**2)))

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


# ---------------------------------------------------------------- MMD


@pytest.mark.parametrize("sigma", [None, 0.7])
def test_mmd_statistic_matches_double_loop(sigma: float | None) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(23, 3)), rng.normal(0.3, 1.2, size=(17, 3))
    det = MMDDrift(sigma=sigma, n_permutations=20, device="cpu", block_rows=5).fit(x)
    result = det.compare(y)
    xs, ys = (x - x.mean(0)) / x.std(0), (y - x.mean(0)) / x.std(0)
    assert result.statistic == pytest.approx(_mmd2_loop(xs, ys, det.sigma_), abs=1e-12)
    assert result.feature == "__multivariate__" and result.method == "mmd"
    assert result.effect_size >= 0


@pytest.mark.parametrize("device", DEVICES)
def test_mmd_device_matches_reference_and_cpu(device: str) -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(23, 3)), rng.normal(0.3, 1.2, size=(17, 3))
    det = MMDDrift(n_permutations=20, device=device, block_rows=5).fit(x)
    xs, ys = (x - x.mean(0)) / x.std(0), (y - x.mean(0)) / x.std(0)
    assert det.compare(y).statistic == pytest.approx(_mmd2_loop(xs, ys, det.sigma_), abs=1e-12)

    x, y = rng.normal(size=(300, 4)), rng.normal(0.2, 1.0, size=(250, 4))
    kwargs = dict(n_permutations=200, seed=3, block_rows=64, perm_batch=32)
    on_device = MMDDrift(device=device, **kwargs).fit(x).compare(y)
    on_cpu = MMDDrift(device="cpu", **kwargs).fit(x).compare(y)
    assert on_device.statistic == pytest.approx(on_cpu.statistic, rel=1e-9, abs=1e-12)
    assert on_device.p_value == pytest.approx(on_cpu.p_value, abs=1 / 201 + 1e-12)
    assert on_device.drifted == on_cpu.drifted


def test_mmd_median_heuristic() -> None:
    x = np.random.default_rng(2).normal(size=(40, 2))
    xs = (x - x.mean(0)) / x.std(0)
    d = np.sqrt(((xs[:, None] - xs[None]) ** 2).sum(-1))[np.triu_indices(40, 1)]
    assert MMDDrift(device="cpu").fit(x).sigma_ == pytest.approx(np.median(d), rel=1e-9)


def test_mmd_symmetric() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.5, 1, size=(25, 4))
    xy = _mmd2_assignments(np.vstack([x, y]), 30, _permutation_masks(55, 30, 0, 0), 1.5, "cpu",
                           None, None)
    yx = _mmd2_assignments(np.vstack([y, x]), 25, _permutation_masks(55, 25, 0, 0), 1.5, "cpu",
                           None, None)
    assert xy[0] == pytest.approx(yx[0], abs=1e-14)


def test_mmd_invariant_to_row_order() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(60, 3)), rng.normal(0.2, 1, size=(50, 3))
    base = MMDDrift(n_permutations=50, device="cpu").fit(x).compare(y)
    shuffled = MMDDrift(n_permutations=50, device="cpu").fit(rng.permutation(x)).compare(
        rng.permutation(y)
    )
    assert shuffled.statistic == pytest.approx(base.statistic, abs=1e-12)
    assert shuffled.effect_size == pytest.approx(base.effect_size, rel=1e-9, abs=1e-12)


def test_mmd_batched_equals_all_at_once() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(70, 3)), rng.normal(0.15, 1, size=(60, 3))
    whole = MMDDrift(n_permutations=99, device="cpu").fit(x).compare(y)
    for perm_batch, block_rows in [(1, 7), (13, 130), (99, 1), (None, 33)]:
        part = MMDDrift(
            n_permutations=99, device="cpu", perm_batch=perm_batch, block_rows=block_rows
        ).fit(x).compare(y)
        assert part.p_value == whole.p_value
        assert part.statistic == pytest.approx(whole.statistic, abs=1e-13)


def test_mmd_same_seed_same_result_and_pvalue_formula() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    det = MMDDrift(n_permutations=30, device="cpu", seed=7).fit(x)
    a, b = det.compare(y), det.compare(y)
    assert a == b
    stats = _mmd2_assignments(
        np.vstack([(x - x.mean(0)) / x.std(0), (y - x.mean(0)) / x.std(0)]), 40,
        _permutation_masks(80, 40, 30, 7), det.sigma_, "cpu", None, None,
    )
    assert a.p_value == pytest.approx((1 + np.sum(stats[1:] >= stats[0] - 1e-12)) / 31)


def test_mmd_false_alarm_rate_under_h0() -> None:
    rng = np.random.default_rng(7)
    det = MMDDrift(n_permutations=100, device="cpu", min_effect=0.0)
    p = np.array([
        det.fit(rng.normal(size=(40, 3))).compare(rng.normal(size=(40, 3))).p_value
        for _ in range(100)
    ])
    assert np.mean(p < 0.05) <= 0.05 + 0.06  # binomial(100, .05): P(>= 11) < 0.01
    assert 0.3 < np.mean(p) < 0.7  # roughly uniform


def test_mmd_detects_half_sd_mean_shift() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(500, 5)), rng.normal(size=(500, 5))
    y[:, 0] += 0.5
    result = MMDDrift(device="cpu").fit(x).compare(y)
    assert result.drifted and result.p_value < 0.01 and result.effect_size > 0.1
    assert not MMDDrift(device="cpu").fit(x).compare(rng.normal(size=(500, 5))).drifted


@pytest.mark.parametrize(
    ("param", "value"),
    [("n_permutations", 0), ("kernel", "poly"), ("sigma", -1.0), ("device", "tpu"),
     ("seed", -1), ("alpha", 1.5), ("max_reference", 1), ("min_effect", -0.1),
     ("perm_batch", 0), ("block_rows", 0)],
)
def test_mmd_bad_params(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        MMDDrift(**{param: value})


def test_mmd_bad_data() -> None:
    det = MMDDrift(device="cpu")
    with pytest.raises(RuntimeError):
        det.compare(np.zeros((5, 2)))
    det.fit(np.random.default_rng(0).normal(size=(10, 2)))
    with pytest.raises(ValueError, match="features"):
        det.compare(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        det.compare(np.full((5, 2), np.nan))


# ---------------------------------------------------------------- domain classifier


@pytest.fixture(autouse=True)
def _one_thread():  # keeps OpenMP from oversubscribing small CI machines
    with threadpool_limits(1):
        yield


def test_domain_auc_and_pvalues_match_sklearn_and_scipy() -> None:
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(250, 3))
    y[:, 1] += 0.4
    det = DomainClassifierDrift(max_iter=30).fit(x)
    result = det.compare(y)
    labels, scores, fold = det.out_of_fold_scores()
    assert result.statistic == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fold_p = []
    for k in range(det.n_folds):
        s, lab = scores[fold == k], labels[fold == k]
        ref = mannwhitneyu(s[lab == 1], s[lab == 0], alternative="greater", method="asymptotic")
        ours = auc_mannwhitney(s[lab == 1], s[lab == 0])[1]
        assert ours == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
        fold_p.append(ref.pvalue)
    assert result.p_value == pytest.approx(min(1.0, 2 * np.mean(fold_p)), rel=1e-9, abs=1e-15)
    assert result.effect_size == pytest.approx(2 * abs(result.statistic - 0.5))


def test_auc_mannwhitney_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 50).astype(float)
    auc, p = auc_mannwhitney(a, b)
    ref = mannwhitneyu(a, b, alternative="greater", method="asymptotic")
    assert p == pytest.approx(ref.pvalue, rel=1e-12)
    assert auc == pytest.approx(ref.statistic / (40 * 50))
    assert auc_mannwhitney(np.ones(3), np.ones(4))[1] == 1.0


def test_domain_false_alarm_rate_stable_data() -> None:
    rng = np.random.default_rng(12)
    det = DomainClassifierDrift(max_iter=20)
    drifted = [
        det.fit(rng.normal(size=(100, 3))).compare(rng.normal(size=(100, 3))).drifted
        for _ in range(40)
    ]
    assert np.mean(drifted) <= 0.05 + 0.075  # binomial(40, .05): P(>= 6) ~ 0.05; test is conservative


def test_domain_detects_shift_and_explains_it() -> None:
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    y[:, 2] += 1.0
    det = DomainClassifierDrift(max_iter=50).fit(x)
    result = det.compare(y)
    assert result.drifted and result.statistic > 0.6
    importances = det.explain()
    assert list(importances)[0] == "x2"
    assert set(importances) == {"x0", "x1", "x2", "x3"}


def test_domain_mixed_frame_with_unseen_category() -> None:
    rng = np.random.default_rng(14)

    def frame(cats: str, n: int = 300) -> pd.DataFrame:
        num = rng.normal(size=n)
        num[:5] = np.nan
        return pd.DataFrame({"num": num, "cat": rng.choice(list(cats), n),
                             "flag": rng.integers(0, 2, n).astype(bool)})

    det = DomainClassifierDrift(max_iter=30, max_categories=6).fit(frame("abcdef"))
    assert det.compare(frame("abcdef")).drifted is False
    result = det.compare(frame("abcxyz"))  # half the window in unseen categories
    assert result.drifted
    assert list(det.explain())[0] == "cat"
    with pytest.raises(ValueError, match="lacks"):
        det.compare(frame("abc").drop(columns="flag"))


@pytest.mark.parametrize(
    ("param", "value"),
    [("alpha", 0.0), ("n_folds", 1), ("seed", -3), ("auc_floor", 0.4),
     ("max_categories", 0), ("max_iter", 0)],
)
def test_domain_bad_params(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        DomainClassifierDrift(**{param: value})


def test_domain_explain_before_compare() -> None:
    det = DomainClassifierDrift().fit(np.zeros((10, 2)))
    with pytest.raises(RuntimeError):
        det.explain()
