"""driftwarden's detectors: a pure library of drift, data-quality and performance statistics.

Arrays or frames in, frozen results out; no I/O, no globals. Usable on its own from a notebook::

    from detectors import DatasetDrift
    dd = DatasetDrift().fit(reference_df)
    report = dd.compare(dd.summarise(current_df))
"""

from detectors.binning import BinCounts, CategoricalBins, NumericBins
from detectors.cbpe import CBPE, CBPESummary, IsotonicCalibrator
from detectors.concept import ADWIN, DDM, EDDM, KSWIN, PageHinkley
from detectors.conditional import ConditionalVerdict, concept_vs_covariate, label_shift_from_counts, label_shift_test
from detectors.domain_classifier import DomainClassifierDrift
from detectors.drift import DatasetDrift, DatasetDriftReport, FeatureDrift, FeatureSummary
from detectors.mmd import MMDDrift
from detectors.performance import (
    ConfusionSummary,
    PerformanceResult,
    classification_metrics,
    classification_performance,
    delong_interval,
    hanley_mcneil_interval,
    regression_metrics,
    regression_performance,
    wilson_interval,
)
from detectors.segments import SegmentPerformance, SegmentSpec, segment_performance
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
    "ADWIN", "DDM", "EDDM", "KSWIN", "PageHinkley",
    "BinCounts", "CategoricalBins", "NumericBins",
    "CBPE", "CBPESummary", "IsotonicCalibrator",
    "ConditionalVerdict", "concept_vs_covariate", "label_shift_from_counts", "label_shift_test",
    "DomainClassifierDrift", "MMDDrift",
    "DatasetDrift", "DatasetDriftReport", "FeatureDrift", "FeatureSummary",
    "ConfusionSummary", "PerformanceResult", "SegmentPerformance", "SegmentSpec", "classification_metrics",
    "classification_performance", "delong_interval", "hanley_mcneil_interval", "regression_metrics",
    "regression_performance", "segment_performance", "wilson_interval",
    "DriftResult", "StreamVerdict",
    "BatchViolations", "ColumnSchema", "Schema",
    "SkewReport", "linf_distance", "scale_factor", "value_skew",
    "chi2_bins", "hellinger_bins", "jensen_shannon_bins", "ks_bins", "ks_samples", "ks_wasserstein_samples", "ks_pvalue", "SortedReference",
    "psi_bins", "wasserstein_bins", "wasserstein_samples",
    "VerdictPolicy", "adjust_pvalues", "decide",
]
