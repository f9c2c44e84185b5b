"""Multiple-testing correction against scipy, and the significance-and-effect verdict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.result import DriftResult
from detectors.verdict import VerdictPolicy, adjust_pvalues, decide

pvals = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(pvals)
def test_bh_matches_scipy_false_discovery_control(p: list[float]) -> None:
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(pvals)
def test_bonferroni_and_none(p: list[float]) -> None:
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), np.minimum(1.0, np.asarray(p) * len(p)))
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)
    adj = adjust_pvalues(p, "bh")
    assert (adj >= np.asarray(p) - 1e-15).all() and (adj <= 1.0).all()


def test_empty_and_bad_input() -> None:
    assert adjust_pvalues([]).size == 0
    for bad in ([-0.1], [1.5], [np.nan]):
        with pytest.raises(ValueError):
            adjust_pvalues(bad)
    with pytest.raises(ValueError):
        adjust_pvalues([0.1], "holm")  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [
    {"alpha": 0.0}, {"alpha": 1.0}, {"alpha": -0.1}, {"correction": "holm"},
    {"effect_floor": -0.1}, {"distance_threshold": -1.0}, {"psi_threshold": -0.2},
])
def test_policy_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        VerdictPolicy(**kwargs)


def _r(feature: str, method: str, p: float | None, effect: float) -> DriftResult:
    return DriftResult(feature, method, effect, p, effect, False)


def test_decide_needs_significance_and_effect() -> None:
    results = [
        _r("significant_and_big", "ks", 1e-6, 0.5),
        _r("significant_but_trivial", "ks", 1e-30, 0.01),
        _r("big_but_noise", "chi2", 0.5, 0.9),
        _r("psi_over", "psi", None, 0.25),
        _r("psi_under", "psi", None, 0.15),
        _r("js_over", "js", None, 0.11),
    ]
    out = {r.feature: r for r in decide(results)}
    assert {k: v.drifted for k, v in out.items()} == {
        "significant_and_big": True, "significant_but_trivial": False, "big_but_noise": False,
        "psi_over": True, "psi_under": False, "js_over": True,
    }
    adjusted = adjust_pvalues([1e-6, 1e-30, 0.5])
    assert [out[k].p_value for k in ("significant_and_big", "significant_but_trivial", "big_but_noise")] == adjusted.tolist()
    assert out["psi_over"].p_value is None


def test_decide_correction_changes_the_verdict() -> None:
    results = [_r(f"f{i}", "ks", 0.02, 1.0) for i in range(5)] + [_r("g", "ks", 0.9, 1.0)]
    assert sum(r.drifted for r in decide(results, VerdictPolicy(correction="none"))) == 5
    assert sum(r.drifted for r in decide(results, VerdictPolicy(correction="bonferroni"))) == 0
    assert sum(r.drifted for r in decide(results, VerdictPolicy(correction="bh"))) == 5  # 0.02 * 6/5 < 0.05
    assert decide([]) == ()
