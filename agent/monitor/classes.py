"""Class values -> codes, one meaning whichever decode route read them."""

from __future__ import annotations

import numpy as np

from agent.monitor.reference import ModelReference

__all__ = ["ClassCodes", "class_key"]


def class_key(c: object) -> str:
    """How a class names its probability in a ``scores`` object: ``"2"`` for 2 and 2.0."""
    if isinstance(c, (int, float, np.integer, np.floating)) and float(c).is_integer():
        return str(int(c))
    return str(c)


class ClassCodes:
    """A model's classes (from its reference) as float codes: numeric classes by their value,
    others by their index in the sorted reference classes.

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> ref = SimpleNamespace(classes=np.array(["no", "yes"], dtype=object),
    ...                       config=SimpleNamespace(task="binary_classification", target="y", score=None))
    >>> ClassCodes(ref).encode(np.array(["yes", "no", "maybe"], dtype=object)).tolist()
    [1.0, 0.0, nan]
    """

    __slots__ = ("ref", "_lookup", "_reference")

    def __init__(self, ref: ModelReference) -> None:
        self.ref = ref
        classes = ref.classes
        self._lookup: dict[str, float] = {} if classes is None else {
            class_key(c): float(c) if isinstance(c, (int, float, np.number)) else float(i)
            for i, c in enumerate(classes.tolist())}
        self._reference: np.ndarray | None = None

    @property
    def codes(self) -> np.ndarray:
        """The reference classes' codes (empty for regression)."""
        classes = self.ref.classes
        return np.empty(0) if classes is None else self.encode(np.asarray(classes, dtype=object))

    @property
    def reference_labels(self) -> np.ndarray:
        """The reference targets' codes (computed once: the reference is fixed)."""
        if self._reference is None:
            self._reference = self.encode(self.ref.frame[self.ref.config.target].dropna().to_numpy(dtype=object))
        return self._reference

    @property
    def proba_columns(self) -> tuple[str, ...]:
        """Multiclass: the reference classes as the keys a ``scores`` object uses."""
        if self.ref.config.task != "multiclass_classification" or self.ref.classes is None:
            return ()
        return tuple(class_key(c) for c in self.ref.classes)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Class values to float codes comparable with the reference target.

        Every decode route writes a prediction or label column the same way: float64 (numbers,
        booleans as 0/1) or, when a record sent a string, an object array of floats and strings.
        A number names a numeric class by its value (kept as is, so a value the reference never
        had is left out of performance later); a string names a class by its text (``"1"`` is
        class 1, ``"yes"`` is the class ``"yes"``); a number never names a string class unless
        its text is that class. Anything else is NaN."""
        arr = np.asarray(values)
        numeric_classes = self.ref.classes is None or self.ref.classes.dtype.kind in "biuf"
        if arr.dtype != object:
            out = arr.astype(float)
            if numeric_classes:
                return out
            uniq, inv = np.unique(out, return_inverse=True)  # a number names a string class by its text
            lookup = self._lookup
            return np.array([lookup.get(class_key(u), np.nan) for u in uniq.tolist()], dtype=float)[inv]
        lookup = self._lookup
        out = np.full(arr.size, np.nan)
        for i, v in enumerate(arr.tolist()):
            if type(v) is str:
                out[i] = lookup.get(v, np.nan)
            elif isinstance(v, (int, float, np.integer, np.floating)):
                out[i] = float(v) if numeric_classes else lookup.get(class_key(v), np.nan)
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes back to the reference's class values (objects; None for NaN or an unknown code):
        the inverse of :meth:`encode` for the classes the reference has."""
        classes = self.ref.classes
        out = np.empty(codes.size, dtype=object)
        if classes is None:
            out[:] = codes.tolist()
            return out
        by_code = {code: c for code, c in zip(self.encode(np.asarray(classes, dtype=object)).tolist(), classes.tolist())}
        out[:] = [by_code.get(c) for c in np.asarray(codes, dtype=float).tolist()]
        return out

    def texts(self, values: np.ndarray) -> np.ndarray:
        """Predicted classes as the categorical prediction-drift bins name them (the reference's
        text: ``1``, not the ``1.0`` a float column would print); regression values as they are."""
        if self.ref.config.task == "regression":
            return values
        if values.dtype == object:  # a record sent a string class: rare, per value
            out = np.empty(values.size, dtype=object)
            out[:] = [v if type(v) is str else class_key(v) for v in values.tolist()]
            return out
        uniq, inv = np.unique(values, return_inverse=True)
        texts = np.empty(uniq.size, dtype=object)
        texts[:] = [class_key(v) for v in uniq.tolist()]
        return texts[inv]
