"""driftwarden's detectors: a pure library of drift, data-quality and performance statistics.

Arrays or frames in, frozen results out; no I/O, no globals. Usable on its own from a notebook::

    from detectors import DatasetDrift
    dd = DatasetDrift().fit(reference_df)
    report = dd.compare(dd.summarise(current_df))

Two shapes (:mod:`detectors.protocols`): a :class:`WindowTest` (``fit`` returning self,
``summarise``, ``compare`` on a mergeable summary) and a :class:`StreamDetector` (``update`` ->
:class:`StreamVerdict`, ``state()`` / ``from_state()``). Every result has one ``to_dict()``
(see :mod:`detectors.result`).

Names are imported on first use (PEP 562 ``__getattr__``): ``from detectors import DatasetDrift``
or ``import detectors.drift`` loads that module and its own imports only, not every detector's
(scipy.stats, scikit-learn and torch stay unloaded until a detector that needs them is used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> defining module
_LAZY = {
    **dict.fromkeys(('BinCounts', 'CategoricalBins', 'NumericBins'), 'detectors.binning'),
    **dict.fromkeys(('CBPE', 'CBPESummary', 'IsotonicCalibrator'), 'detectors.cbpe'),
    **dict.fromkeys(('ADWIN', 'DDM', 'EDDM', 'KSWIN', 'PageHinkley'), 'detectors.concept'),
    **dict.fromkeys(('ConditionalVerdict', 'concept_vs_covariate', 'label_shift_from_counts', 'label_shift_test'), 'detectors.conditional'),
    **dict.fromkeys(('DomainClassifierDrift',), 'detectors.domain_classifier'),
    **dict.fromkeys(('DatasetDrift', 'DatasetDriftReport', 'DatasetSummary', 'FeatureDrift', 'FeatureSummary'), 'detectors.drift'),
    **dict.fromkeys(('MMDDrift',), 'detectors.mmd'),
    **dict.fromkeys(('StreamDetector', 'WindowTest'), 'detectors.protocols'),
    **dict.fromkeys(('RowSample',), 'detectors.rows'),
    **dict.fromkeys(('ConfusionSummary', 'PerformanceResult', 'classification_metrics', 'classification_performance', 'delong_interval', 'hanley_mcneil_interval', 'regression_metrics', 'regression_performance', 'weighted_metric', 'wilson_interval'), 'detectors.performance'),
    **dict.fromkeys(('SegmentPerformance', 'SegmentSpec', 'segment_performance'), 'detectors.segments'),
    **dict.fromkeys(('DriftResult', 'StreamVerdict'), 'detectors.result'),
    **dict.fromkeys(('Action', 'Cause', 'Estimate', 'Evaluation', 'FeatureShift', 'QualityFinding', 'Slice', 'SliceReport', 'analyse', 'data_quality', 'evaluate_drop', 'find_slices'), 'detectors.rca'),
    **dict.fromkeys(('BatchViolations', 'ColumnSchema', 'Schema'), 'detectors.schema'),
    **dict.fromkeys(('SkewReport', 'linf_distance', 'scale_factor', 'value_skew'), 'detectors.skew'),
    **dict.fromkeys(('chi2_bins', 'hellinger_bins', 'jensen_shannon_bins', 'ks_bins', 'ks_samples', 'SortedReference', 'ks_pvalue', 'ks_wasserstein_samples', 'psi_bins', 'wasserstein_bins', 'wasserstein_samples'), 'detectors.univariate'),
    **dict.fromkeys(('VerdictPolicy', 'adjust_pvalues', 'decide'), 'detectors.verdict'),
}

if TYPE_CHECKING:  # static checkers and IDEs see the eager imports
    from detectors.binning import BinCounts, CategoricalBins, NumericBins
    from detectors.cbpe import CBPE, CBPESummary, IsotonicCalibrator
    from detectors.concept import ADWIN, DDM, EDDM, KSWIN, PageHinkley
    from detectors.conditional import ConditionalVerdict, concept_vs_covariate, label_shift_from_counts, label_shift_test
    from detectors.domain_classifier import DomainClassifierDrift
    from detectors.drift import DatasetDrift, DatasetDriftReport, DatasetSummary, FeatureDrift, FeatureSummary
    from detectors.mmd import MMDDrift
    from detectors.protocols import StreamDetector, WindowTest
    from detectors.rows import RowSample
    from detectors.performance import (
        ConfusionSummary,
        PerformanceResult,
        classification_metrics,
        classification_performance,
        delong_interval,
        hanley_mcneil_interval,
        regression_metrics,
        regression_performance,
        weighted_metric,
        wilson_interval,
    )
    from detectors.segments import SegmentPerformance, SegmentSpec, segment_performance
    from detectors.rca import (Action, Cause, Estimate, Evaluation, FeatureShift, QualityFinding, Slice, SliceReport,
                               analyse, data_quality, evaluate_drop, find_slices)
    from detectors.result import DriftResult, StreamVerdict
    from detectors.schema import BatchViolations, ColumnSchema, Schema
    from detectors.skew import SkewReport, linf_distance, scale_factor, value_skew
    from detectors.univariate import (
        chi2_bins,
        hellinger_bins,
        jensen_shannon_bins,
        ks_bins,
        ks_samples,
        SortedReference,
        ks_pvalue,
        ks_wasserstein_samples,
        psi_bins,
        wasserstein_bins,
        wasserstein_samples,
    )
    from detectors.verdict import VerdictPolicy, adjust_pvalues, decide

__all__ = [
    "WindowTest", "StreamDetector",
    "ADWIN", "DDM", "EDDM", "KSWIN", "PageHinkley",
    "BinCounts", "CategoricalBins", "NumericBins",
    "CBPE", "CBPESummary", "IsotonicCalibrator",
    "ConditionalVerdict", "concept_vs_covariate", "label_shift_from_counts", "label_shift_test",
    "DomainClassifierDrift", "MMDDrift", "RowSample",
    "DatasetDrift", "DatasetDriftReport", "DatasetSummary", "FeatureDrift", "FeatureSummary",
    "ConfusionSummary", "PerformanceResult", "SegmentPerformance", "SegmentSpec", "classification_metrics",
    "classification_performance", "delong_interval", "hanley_mcneil_interval", "regression_metrics",
    "regression_performance", "segment_performance", "weighted_metric", "wilson_interval",
    "DriftResult", "StreamVerdict",
    "Action", "Cause", "Estimate", "Evaluation", "FeatureShift", "QualityFinding", "Slice", "SliceReport",
    "analyse", "data_quality", "evaluate_drop", "find_slices",
    "BatchViolations", "ColumnSchema", "Schema",
    "SkewReport", "linf_distance", "scale_factor", "value_skew",
    "chi2_bins", "hellinger_bins", "jensen_shannon_bins", "ks_bins", "ks_samples", "ks_wasserstein_samples", "ks_pvalue", "SortedReference",
    "psi_bins", "wasserstein_bins", "wasserstein_samples",
    "VerdictPolicy", "adjust_pvalues", "decide",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
