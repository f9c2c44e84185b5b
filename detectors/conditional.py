"""Conditional drift tests: label shift, and concept drift versus covariate shift.

Label shift (``P(y)`` moved): a chi-square test of homogeneity on the 2 x k table of class
counts (reference row, window row), the same statistic as ``scipy.stats.chi2_contingency``
without Yates' correction. Its effect size is the total-variation distance between the two class
distributions, ``0.5 * sum |p_ref - p_win|`` in [0, 1]; Cramér's V of the table is
``sqrt(statistic / N)`` for reference readers. Assumes independent rows and expected counts of
about 5 or more per cell; with a huge window any shift is significant, so the verdict also needs
``effect_size >= min_effect``.

Concept drift versus covariate shift. Let ``q_i`` be the probability that the prediction on row
``i`` is wrong under the *reference* relation ``P(y | x)`` (one minus the calibrated probability of
the predicted class, from :meth:`detectors.cbpe.CBPE.expected_errors`). Then:

* covariate shift (inputs moved in a way that matters for the error): the mean of ``q`` over the
  window differs from its mean over the reference. ``q`` is a function of ``x`` only, so this is
  a two-sample test on inputs, projected on the direction that matters (Welch's t-test).
* concept drift (``P(y | x)`` moved): if it did not, each window error ``e_i`` is a
  Bernoulli(``q_i``) draw, so ``sum(e - q) / sqrt(sum q (1 - q))`` is approximately standard normal
  (a calibration-in-the-large test on the window). A realized error far from the expected error
  means the labels no longer follow the reference relation.

Each part needs significance (level ``alpha``) *and* an absolute error-rate change of at least
``min_effect``. ``alternative="greater"`` (default) looks for more errors only (a performance drop,
what an alert is about); ``"two-sided"`` also flags a window that does better than expected. Misleads when the calibrator is poor where the window lives (few reference
rows there): that looks like concept drift; the null ignores the calibrator's own sampling error,
which ``min_effect`` absorbs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from detectors._checks import check_real
from detectors.result import DriftResult, as_float

LABEL_FEATURE = "__label__"
Kind = Literal["stable", "covariate_shift", "concept_drift", "both"]
KINDS: tuple[Kind, ...] = get_args(Kind)


def _check_alpha_effect(alpha: float, min_effect: float) -> None:
    check_real("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    check_real("min_effect", min_effect, 0.0)


def label_shift_from_counts(reference_counts: Any, window_counts: Any, *, alpha: float = 0.05,
                            min_effect: float = 0.05) -> DriftResult:
    """Label-shift test from per-class counts in one class order (mergeable summaries).

    >>> label_shift_from_counts([500, 500], [50, 50]).drifted
    False
    """
    _check_alpha_effect(alpha, min_effect)
    ref = np.asarray(reference_counts, dtype=np.float64)
    win = np.asarray(window_counts, dtype=np.float64)
    if ref.ndim != 1 or ref.shape != win.shape or (ref < 0).any() or (win < 0).any():
        raise ValueError(f"counts must be two non-negative 1-d arrays of one length, got {ref.shape}, {win.shape}")
    if ref.sum() == 0 or win.sum() == 0:
        raise ValueError("reference and window need at least one label each")
    keep = (ref + win) > 0
    table = np.stack([ref[keep], win[keep]])
    tv = 0.5 * float(np.abs(table[0] / table[0].sum() - table[1] / table[1].sum()).sum())
    if table.shape[1] < 2:
        return DriftResult(LABEL_FEATURE, "chi2", 0.0, 1.0, tv, False)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    from scipy import stats  # imported on use (scipy.stats is slow to import)

    p_value = float(stats.chi2.sf(statistic, table.shape[1] - 1))
    return DriftResult(LABEL_FEATURE, "chi2", statistic, p_value, tv, p_value < alpha and tv >= min_effect)


def label_shift_test(reference_labels: Any, window_labels: Any, *, alpha: float = 0.05,
                     min_effect: float = 0.05) -> DriftResult:
    """Chi-square test of the window's class distribution against the reference's.

    Classes seen in either sample are compared (a class new in the window counts as a shift).

    >>> r = label_shift_test([0] * 900 + [1] * 100, [0] * 500 + [1] * 500)
    >>> r.feature, r.drifted, round(r.effect_size, 2)
    ('__label__', True, 0.4)
    """
    ref = np.asarray(reference_labels)
    win = np.asarray(window_labels)
    classes, inv = np.unique(np.concatenate([ref, win]), return_inverse=True)
    k = len(classes)
    return label_shift_from_counts(np.bincount(inv[: len(ref)], minlength=k),
                                   np.bincount(inv[len(ref):], minlength=k), alpha=alpha, min_effect=min_effect)


@dataclass(frozen=True, slots=True)
class ConditionalVerdict:
    """Concept drift versus covariate shift on one window (error rates are fractions).

    Statistics are infinite (and p-values 0 or 1) when a variance is zero.

    >>> v = ConditionalVerdict("concept_drift", 0.1, 0.1, 0.2, 0.0, 0.5, 4.1, 2e-5, 4000, 1000)
    >>> v.to_dict()["kind"], ConditionalVerdict.from_dict(v.to_dict()) == v
    ('concept_drift', True)
    """

    kind: Kind
    expected_error_reference: float  # mean q over the reference
    expected_error_window: float     # mean q over the window (label-free estimate)
    realized_error_window: float     # mean observed error on the window
    covariate_statistic: float       # Welch t of q (window vs reference)
    covariate_p_value: float
    concept_statistic: float         # z of sum(e - q) / sqrt(sum q (1 - q))
    concept_p_value: float
    n_reference: int
    n_window: int

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-ready values (statistics may be +-inf, see the module doc
        of :mod:`detectors.result`)."""
        return {"kind": self.kind, "expected_error_reference": float(self.expected_error_reference),
                "expected_error_window": float(self.expected_error_window),
                "realized_error_window": float(self.realized_error_window),
                "covariate_statistic": float(self.covariate_statistic), "covariate_p_value": float(self.covariate_p_value),
                "concept_statistic": float(self.concept_statistic), "concept_p_value": float(self.concept_p_value),
                "n_reference": int(self.n_reference), "n_window": int(self.n_window)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConditionalVerdict:
        """Inverse of :meth:`to_dict` (the same keys as ``dataclasses.asdict``, which older agent
        checkpoints hold); ``null`` statistics (orjson's infinity) come back as NaN."""
        if d["kind"] not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {d['kind']!r}")
        return cls(d["kind"], as_float(d["expected_error_reference"]), as_float(d["expected_error_window"]),
                   as_float(d["realized_error_window"]), as_float(d["covariate_statistic"]),
                   as_float(d["covariate_p_value"]), as_float(d["concept_statistic"]), as_float(d["concept_p_value"]),
                   int(d["n_reference"]), int(d["n_window"]))


def concept_vs_covariate(reference_expected_errors: Any, window_expected_errors: Any, window_errors: Any, *,
                         alpha: float = 0.05, min_effect: float = 0.01,
                         alternative: str = "greater") -> ConditionalVerdict:
    """Tell "inputs moved" from "P(y | x) moved" (see the module docstring for the reasoning).

    ``*_expected_errors``: per-row probability of a wrong prediction under the reference relation
    (``CBPE.expected_errors``); ``window_errors``: 1 where the window prediction was wrong.

    >>> rng = np.random.default_rng(0)
    >>> q = rng.uniform(0, 0.3, 4000)
    >>> concept_vs_covariate(q, q, (rng.uniform(size=q.size) < q).astype(int)).kind
    'stable'
    >>> concept_vs_covariate(q, q, (rng.uniform(size=q.size) < q + 0.1).astype(int)).kind
    'concept_drift'
    """
    _check_alpha_effect(alpha, min_effect)
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    q_ref = np.asarray(reference_expected_errors, dtype=np.float64)
    q_win = np.asarray(window_expected_errors, dtype=np.float64)
    e = np.asarray(window_errors, dtype=np.float64)
    if q_ref.ndim != 1 or len(q_ref) < 2 or q_win.ndim != 1 or len(q_win) < 2:
        raise ValueError("expected errors must be 1-d with at least 2 rows each")
    if e.shape != q_win.shape:
        raise ValueError(f"window_errors shape {e.shape} differs from window_expected_errors {q_win.shape}")
    for name, a in (("reference_expected_errors", q_ref), ("window_expected_errors", q_win)):
        if not (np.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()):
            raise ValueError(f"{name} must be probabilities in [0, 1]")
    if not np.isin(e, (0.0, 1.0)).all():
        raise ValueError("window_errors must be 0/1")
    from scipy import stats  # imported on use (scipy.stats is slow to import)

    m_ref, m_win, m_real = float(q_ref.mean()), float(q_win.mean()), float(e.mean())
    se_cov = np.sqrt(q_ref.var(ddof=1) / len(q_ref) + q_win.var(ddof=1) / len(q_win))
    if se_cov > 0:
        t_cov = (m_win - m_ref) / se_cov
        p_cov = float(stats.ttest_ind(q_win, q_ref, equal_var=False, alternative=alternative).pvalue)
    else:
        t_cov = 0.0 if m_win == m_ref else float(np.sign(m_win - m_ref) * np.inf)
        p_cov = 0.0 if (t_cov > 0 or (alternative == "two-sided" and t_cov != 0)) else 1.0
    var_con = float((q_win * (1 - q_win)).sum())
    diff = float((e - q_win).sum())
    if var_con > 0:
        z_con = diff / np.sqrt(var_con)
        p_con = float(stats.norm.sf(z_con) if alternative == "greater" else 2 * stats.norm.sf(abs(z_con)))
    else:
        z_con = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
        p_con = 0.0 if (z_con > 0 or (alternative == "two-sided" and z_con != 0)) else 1.0
    sign = (lambda d: d) if alternative == "greater" else abs
    covariate = p_cov < alpha and sign(m_win - m_ref) >= min_effect
    concept = p_con < alpha and sign(m_real - m_win) >= min_effect
    kind = KINDS[int(covariate) + 2 * int(concept)]
    return ConditionalVerdict(kind, m_ref, m_win, m_real, float(t_cov), p_cov, float(z_con), p_con,
                              len(q_ref), len(q_win))
