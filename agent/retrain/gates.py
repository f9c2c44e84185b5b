"""The training-debugging checklist as gates: each a small function returning a :class:`Gate`.

A gate's ``figure`` is compared with its ``threshold``; the detail says how (``<=`` or ``>``) and
what the figure measures. The trainer (:mod:`agent.retrain.trainer`) runs them in order and stops
at the first that fails. The metrics the gates compare (``PRIMARY``): ROC AUC for binary (the
served score ranks the holdout as the challenger's probability does), accuracy for multiclass (a
served label is all a multiclass champion needs), RMSE for regression (lower is better). All are
computed on row weights, so one function gives a point value and a whole bootstrap distribution.

The champion/challenger decision uses :func:`paired_bootstrap`: rows of the holdout are resampled
together for both models (``rng.integers(0, n, (batch, n))`` per batch, as
``scipy.stats.bootstrap(..., paired=True, method="percentile")`` does, so the two agree to the
last bit on the same seed), and the percentile interval of the improvement decides.
"""

from __future__ import annotations

from agent.retrain.champion import ChampionComparison, SegmentComparison, champion_gate, compare_champion
from agent.retrain.data_gates import (alignment_gate, alignment_loss, alignment_predictions, baseline_predictions,
                                      dtypes_gate, finite_gate, leakage_gate, normalised_gate, row_hashes,
                                      shapes_gate)
from agent.retrain.gate import Gate, json_float
from agent.retrain.model_gates import (baseline_gate, chance_loss, early_stopping_gate, grad_norm_gate,
                                       gradcheck_gate, gradient_flow_gate, init_loss_gate, loss_decrease_gate,
                                       nonfinite_gate, overfit_gate, symmetry_gate)
from agent.retrain.scoring import PRIMARY, BootstrapInterval, metric, metric_rows, paired_bootstrap

__all__ = ["Gate", "json_float", "PRIMARY", "metric_rows", "metric", "BootstrapInterval", "paired_bootstrap",
           "shapes_gate", "dtypes_gate", "finite_gate", "normalised_gate", "baseline_predictions",
           "alignment_predictions", "alignment_loss", "alignment_gate", "row_hashes", "leakage_gate", "symmetry_gate", "chance_loss",
           "init_loss_gate", "gradient_flow_gate", "gradcheck_gate", "overfit_gate", "nonfinite_gate",
           "grad_norm_gate", "loss_decrease_gate", "early_stopping_gate", "baseline_gate",
           "SegmentComparison", "ChampionComparison", "compare_champion", "champion_gate"]
