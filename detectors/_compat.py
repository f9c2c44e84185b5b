"""Compatibility for the old classmethod spelling of ``fit``.

``fit`` is an instance method returning ``self`` everywhere. A few classes (``SortedReference``,
``IsotonicCalibrator``, ``SegmentSpec``) used to build themselves with a classmethod
``X.fit(data, ...)``; :func:`fit_method` keeps that call working (with a DeprecationWarning)
while ``X(...).fit(data)`` is the one meaning of ``fit``.
"""

from __future__ import annotations

import functools
import types
import warnings
from collections.abc import Callable
from typing import Any


class _FitMethod:
    """Instance access: the bound ``fit``. Class access: the legacy constructor-and-fit."""

    def __init__(self, func: Callable[..., Any], legacy: Callable[..., Any]) -> None:
        self._func = func
        self._legacy = legacy
        functools.update_wrapper(self, func)

    def __get__(self, obj: Any, cls: type | None = None) -> Callable[..., Any]:
        if obj is not None:
            return types.MethodType(self._func, obj)
        owner = cls if cls is not None else type(obj)

        @functools.wraps(self._legacy)
        def legacy(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(f"{owner.__name__}.fit(...) called on the class is deprecated: "
                          f"use {owner.__name__}(...).fit(...)", DeprecationWarning, stacklevel=2)
            return self._legacy(owner, *args, **kwargs)

        return legacy


def fit_method(legacy: Callable[..., Any]) -> Callable[[Callable[..., Any]], _FitMethod]:
    """Decorate an instance ``fit``; ``legacy(cls, *args, **kwargs)`` answers ``cls.fit(*args, **kwargs)``."""

    def wrap(func: Callable[..., Any]) -> _FitMethod:
        return _FitMethod(func, legacy)

    return wrap
