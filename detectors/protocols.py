"""The two shapes every detector takes: a window test and a stream detector.

A **window test** learns a reference once and judges windows through a mergeable summary::

    test = FeatureDrift("age", "numeric").fit(reference)   # fit: instance method, returns self
    s = test.summarise(batch_1)                            # bounded where the statistic allows
    s += test.summarise(batch_2)                           # summary(a) += summary(b) == summary(a ++ b)
    result = test.compare(s)                               # compare takes a summary

:class:`~detectors.drift.FeatureDrift`, :class:`~detectors.drift.DatasetDrift`,
:class:`~detectors.mmd.MMDDrift` and :class:`~detectors.domain_classifier.DomainClassifierDrift`
are window tests. A **stream detector** (ADWIN, DDM, EDDM, KSWIN, Page-Hinkley) takes batches of
one stream, ``update(values) -> StreamVerdict``, and its running state is plain JSON-able data
with an inverse: ``type(d).from_state(d.state())`` continues exactly where ``d`` is.

Both are :func:`typing.runtime_checkable`, so ``isinstance`` checks that the methods exist (not
their signatures; ``tests/unit/detectors/test_conformance.py`` checks the behaviour).

>>> from detectors import ADWIN, FeatureDrift
>>> isinstance(ADWIN(), StreamDetector), isinstance(ADWIN(), WindowTest)
(True, False)
>>> isinstance(FeatureDrift("x", "numeric"), WindowTest)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np

from detectors.result import StreamVerdict

__all__ = ["WindowTest", "StreamDetector"]

SummaryT = TypeVar("SummaryT")
ResultT = TypeVar("ResultT", covariant=True)


@runtime_checkable
class WindowTest(Protocol[SummaryT, ResultT]):
    """Reference-fitted test of windows: ``fit`` -> ``summarise`` (mergeable with ``+=``) -> ``compare``.

    ``method`` names the statistic in the results (``"ks"``, ``"mmd"``, ...; ``"dataset"`` for
    :class:`~detectors.drift.DatasetDrift`, whose per-feature methods are in its results).
    ``compare`` also accepts raw window values where a test can summarise them itself
    (MMD, domain classifier), so ``test.compare(window)`` keeps working.

    >>> from detectors import MMDDrift
    >>> isinstance(MMDDrift(), WindowTest)
    True
    """

    method: str

    def fit(self, reference: Any) -> Self: ...

    def summarise(self, values: Any) -> SummaryT: ...

    def compare(self, window: SummaryT) -> ResultT: ...


@runtime_checkable
class StreamDetector(Protocol):
    """Batched change detector on one stream (the model's error stream, 1 = error).

    ``update`` returns where in the batch it fired (positions in the batch, see
    :class:`~detectors.result.StreamVerdict`) and resets itself after each drift; ``reset``
    forgets everything; ``state()`` is JSON-able and ``from_state`` its inverse.

    >>> from detectors import PageHinkley
    >>> d = PageHinkley()
    >>> _ = d.update(np.zeros(100))
    >>> PageHinkley.from_state(d.state()).state() == d.state()
    True
    """

    def update(self, values: np.ndarray) -> StreamVerdict: ...

    def reset(self) -> None: ...

    def state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self: ...
