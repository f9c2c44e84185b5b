"""Root-cause analysis statistics (pure: frames in, typed reports out).

:func:`find_slices` is the "narrow" step: the single columns and pairs of columns that hold most
of a window's excess error, each with its support and a multiple-testing-corrected test.

>>> from detectors.rca import find_slices, Slice, SliceReport
"""

from __future__ import annotations

from detectors.rca._encode import ColumnBins
from detectors.rca.slices import Slice, SliceReport, find_slices

__all__ = ["ColumnBins", "Slice", "SliceReport", "find_slices"]
