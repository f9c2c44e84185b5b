"""Root-cause analysis (pure: frames in, typed reports out).

:func:`analyse` runs the four steps of the debugging framework on one incident's rows: *evaluate*
(:func:`evaluate_drop`: which metric fell, and how much today's inputs explain), *narrow*
(:func:`find_slices`: the single columns and pairs that hold the excess error), *root cause*
(:class:`Cause`, from a fixed vocabulary, ranked: :mod:`detectors.rca.causes`) and *mitigate*
(:class:`Action`).

>>> from detectors.rca import analyse, find_slices, Slice, SliceReport, Cause, Action
"""

from __future__ import annotations

from detectors.rca._encode import ColumnBins
from detectors.rca.analysis import FeatureShift, RCAReport, analyse
from detectors.rca.causes import ACTIONS, CAUSES, Action, Cause, actions_for
from detectors.rca.evaluate import Estimate, Evaluation, WindowMetric, evaluate_drop
from detectors.rca.noise import LabelNoiseReport, OutOfFold, find_label_noise, flag_label_noise, out_of_fold
from detectors.rca.quality import QualityFinding, affected_rows, data_quality
from detectors.rca.slices import Slice, SliceReport, find_slices

__all__ = ["ACTIONS", "CAUSES", "Action", "Cause", "ColumnBins", "Estimate", "Evaluation", "FeatureShift",
           "LabelNoiseReport", "OutOfFold", "QualityFinding", "RCAReport", "Slice", "SliceReport", "WindowMetric",
           "actions_for", "affected_rows", "analyse", "data_quality", "evaluate_drop", "find_label_noise",
           "find_slices", "flag_label_noise", "out_of_fold"]
