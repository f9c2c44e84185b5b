"""Streaming concept-drift detectors on the error stream (1 = model error, 0 = correct).

Each detector takes batches (``update(values) -> StreamVerdict``), resets itself after a drift,
and gives its running state as plain JSON-able values (``state()`` / ``from_state()``).
Detection indices equal river's implementations with the same parameters.
"""

from detectors.concept.adwin import ADWIN
from detectors.concept.ddm import DDM
from detectors.concept.eddm import EDDM
from detectors.concept.kswin import KSWIN
from detectors.concept.page_hinkley import PageHinkley

__all__ = ["ADWIN", "DDM", "EDDM", "KSWIN", "PageHinkley"]
