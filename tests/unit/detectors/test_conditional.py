"""Label shift against scipy; concept-vs-covariate on simulations with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from detectors.conditional import concept_vs_covariate, label_shift_from_counts, label_shift_test
from detectors.result import DriftResult


@pytest.mark.parametrize("seed", range(4))
def test_label_shift_equals_chi2_contingency(seed):
    rng = np.random.default_rng(seed)
    k = 2 + seed
    ref = rng.choice(k, 3000, p=np.full(k, 1 / k))
    win = rng.choice(k, 800, p=rng.dirichlet(np.ones(k) * 5))
    r = label_shift_test(ref, win)
    table = np.stack([np.bincount(ref, minlength=k), np.bincount(win, minlength=k)])
    stat, p, dof, _ = chi2_contingency(table, correction=False)
    assert isinstance(r, DriftResult) and r.feature == "__label__" and r.method == "chi2"
    assert r.statistic == pytest.approx(stat, rel=1e-10) and r.p_value == pytest.approx(p, rel=1e-8, abs=1e-300)
    tv = 0.5 * np.abs(table[0] / table[0].sum() - table[1] / table[1].sum()).sum()
    assert r.effect_size == pytest.approx(tv)


def test_label_shift_verdict_needs_significance_and_effect():
    rng = np.random.default_rng(0)
    ref = rng.choice(2, 200_000, p=[0.5, 0.5])
    tiny = rng.choice(2, 200_000, p=[0.49, 0.51])  # significant but trivial
    r = label_shift_test(ref, tiny)
    assert r.p_value < 0.05 and not r.drifted
    big = rng.choice(2, 500, p=[0.3, 0.7])
    assert label_shift_test(ref, big).drifted
    assert not label_shift_test(ref, rng.choice(2, 500)).drifted


def test_label_shift_new_class_and_strings_and_counts():
    r = label_shift_test(["a"] * 50 + ["b"] * 50, ["a"] * 40 + ["b"] * 40 + ["c"] * 20)
    assert r.drifted and r.effect_size == pytest.approx(0.2)
    same = label_shift_test(["a"] * 10, ["a"] * 5)
    assert same.statistic == 0 and same.p_value == 1 and not same.drifted
    assert label_shift_from_counts([10, 0], [10, 0]).p_value == 1.0


@pytest.mark.parametrize("kw", [dict(alpha=0), dict(alpha=1.5), dict(min_effect=-1)])
def test_label_shift_bad_params(kw):
    with pytest.raises(ValueError):
        label_shift_test([0, 1], [0, 1], **kw)
    with pytest.raises(ValueError):
        label_shift_from_counts([1, -1], [1, 1])


def simulate(rng, n=5000, shift=0.0, concept=0.0):
    q_ref = rng.beta(2, 12, 20_000)
    q_win = np.clip(rng.beta(2, 12, n) + shift, 0, 1)
    e = (rng.uniform(size=n) < np.clip(q_win + concept, 0, 1)).astype(int)
    return q_ref, q_win, e


@pytest.mark.parametrize(("shift", "concept", "kind"), [
    (0.0, 0.0, "stable"), (0.08, 0.0, "covariate_shift"), (0.0, 0.08, "concept_drift"), (0.08, 0.08, "both")])
def test_concept_vs_covariate_kinds(shift, concept, kind):
    r = concept_vs_covariate(*simulate(np.random.default_rng(1), shift=shift, concept=concept))
    assert r.kind == kind
    assert r.n_window == 5000 and r.n_reference == 20_000


def test_concept_vs_covariate_false_alarm_rate_near_alpha():
    rng = np.random.default_rng(2)
    sims = [concept_vs_covariate(*simulate(rng, n=2000), min_effect=0.0) for _ in range(300)]
    assert np.mean([s.concept_p_value < 0.05 for s in sims]) < 0.09
    assert np.mean([s.covariate_p_value < 0.05 for s in sims]) < 0.09


def test_concept_vs_covariate_direction_and_bad_inputs():
    rng = np.random.default_rng(3)
    better = simulate(rng, concept=-0.06)
    assert concept_vs_covariate(*better).kind == "stable"
    assert concept_vs_covariate(*better, alternative="two-sided").kind == "concept_drift"
    q = np.full(10, 0.2)
    for args, kw in [((q, q, np.full(10, 2)), {}), ((q, q, np.zeros(9)), {}), ((q + 1, q, np.zeros(10)), {}),
                     ((q, q, np.zeros(10)), dict(alternative="less")), ((q, q, np.zeros(10)), dict(alpha=2))]:
        with pytest.raises(ValueError):
            concept_vs_covariate(*args, **kw)
