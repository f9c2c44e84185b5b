"""The message contract, record by record: the exact route that names every problem.

orjson parses (Python's json where a long number token needs Python's rounding), then each
required field is checked; a record that breaks the contract gets a reason naming the field.
The faster routes (the native scanner, the typed msgspec structs) accept only what this route
accepts, and leave everything else to it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Collection, Sequence

import msgspec
import orjson

__all__ = ["LONG_NUMBER", "Prediction", "Label", "load", "prediction_error", "label_error"]

_NUMBER = (int, float)
# Records holding such a run are parsed with Python's own rules (int(), float()): the C parsers
# here round correctly only on shorter tokens (msgspec 0.23 reads "0." + 99,999 zeros +
# "1e1000000", which is +inf, as 0.0), and past 64 bits an integer is a float to orjson but an int
# to msgspec. Strings with such digit runs take the same, slower route.
LONG_NUMBER = re.compile(rb"[-+.0-9eE]{128,}|[0-9]{20,}")


def _field_error(obj: Any, required: Sequence[str]) -> str | None:
    if not isinstance(obj, dict):
        return f"record is a JSON {_type_name(obj)}, expected an object"
    for name in required:
        if name not in obj:
            return f"missing required field '{name}'"
    return None


def _type_name(v: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


# A feature value is a float (so an integer beyond a double's range is refused here and
# named by the exact route), a string, a boolean, null, or a nested value that the feature
# checks count as a type error.
_FeatureValue = float | str | bool | None | dict[str, Any] | list[Any]


class Prediction(msgspec.Struct):
    """A valid prediction record's fields (features as decoded objects)."""

    prediction_id: str
    model: str
    features: dict[str, Any]
    prediction: bool | float | str
    score: float | None = None
    scores: dict[str, float] | None = None
    timestamp: float | str | None = None


class Label(msgspec.Struct):
    """A label record's fields; also the typed msgspec route for labels (no int field: an
    integer beyond a double's range is refused there and named here)."""

    prediction_id: str
    model: str
    label: bool | float | str
    timestamp: float | str | None = None


def load(v: bytes | None, max_bytes: int) -> tuple[Any, str | None]:
    """The exact route's parse: orjson, or Python's json where a long number token needs
    Python's rounding; numbers outside a double's range are refused with their field named."""
    if v is None:
        return None, "empty record (null value)"
    if len(v) > max_bytes:
        return None, f"record of {len(v)} bytes exceeds the {max_bytes}-byte limit"
    if LONG_NUMBER.search(v) is None:
        try:
            return orjson.loads(v), None
        except orjson.JSONDecodeError as e:
            if "number" not in str(e):
                return None, f"invalid JSON: {e}"
            # orjson refuses integers beyond 64 bits and numbers beyond a double: valid JSON,
            # so read it again to accept the in-range ones and name the field of the others
    return _load_python(v)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_python(v: bytes) -> tuple[Any, str | None]:
    try:
        o = json.loads(v, parse_constant=_reject_constant)
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digit limit, NaN/Infinity
        return None, f"invalid JSON: {e}"[:300]
    err = _string_error(o, 0)
    if err is not None:
        return None, err
    return o, _range_error(o)


def _string_error(o: Any, depth: int) -> str | None:
    """orjson's rule, which Python's json does not apply: no lone surrogate in a string."""
    if depth > 1024:
        return "invalid JSON: nested too deeply"
    if type(o) is str:
        try:
            o.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid JSON: string holds a lone UTF-16 surrogate"
        return None
    items = o.items() if type(o) is dict else o if type(o) is list else ()
    for item in items:
        for x in (item if type(o) is dict else (item,)):
            if (err := _string_error(x, depth + 1)) is not None:
                return err
    return None


def _out_of_range(x: Any) -> bool:
    if type(x) is int:
        try:
            float(x)
        except OverflowError:
            return True
        return False
    return type(x) is float and not math.isfinite(x)


def _range_error(o: Any) -> str | None:
    """A number beyond a double (``1e400``, an integer of 309 digits) in a field the agent reads."""
    if type(o) is not dict:
        return None
    for name in ("prediction", "score", "label", "timestamp"):
        if _out_of_range(o.get(name)):
            return f"field '{name}' is a number outside the range of a double"
    for parent in ("features", "scores"):
        d = o.get(parent)
        if type(d) is dict:
            for k, x in d.items():
                if _out_of_range(x):
                    return f"field '{parent}.{k}' is a number outside the range of a double"[:300]
    return None


def _envelope_error(o: Any, required: Sequence[str], known_models: Collection[str]) -> str | None:
    """Required fields present, ``prediction_id`` a non-empty string, ``model`` a known one."""
    err = _field_error(o, required)
    if err is not None:
        return err
    pid, model = o["prediction_id"], o["model"]
    if type(pid) is not str or not pid:
        return f"field 'prediction_id' must be a non-empty string, got {_type_name(pid)}"
    if type(model) is not str:
        return f"field 'model' must be a string, got {_type_name(model)}"
    if model not in known_models:
        return f"unknown model {model!r}"
    return None


def prediction_error(o: Any, known_models: Collection[str]) -> str | None:
    err = _envelope_error(o, ("prediction_id", "model", "features", "prediction"), known_models)
    if err is not None:
        return err
    feats, pred = o["features"], o["prediction"]
    if type(feats) is not dict:
        return f"field 'features' must be an object, got {_type_name(feats)}"
    if type(pred) not in (int, float, str, bool):
        return f"field 'prediction' must be a number, string or boolean, got {_type_name(pred)}"
    s = o.get("score")
    if s is not None and (type(s) not in _NUMBER or not 0.0 <= s <= 1.0):
        return f"field 'score' must be a probability in [0, 1], got {s!r}"[:200]
    ss = o.get("scores")
    if ss is not None and (type(ss) is not dict
                           or not all(type(p) in _NUMBER and 0.0 <= p <= 1.0 for p in ss.values())):
        return "field 'scores' must be an object of class probabilities in [0, 1]"
    return None


def label_error(o: Any, known_models: Collection[str]) -> str | None:
    err = _envelope_error(o, ("prediction_id", "model", "label"), known_models)
    if err is not None:
        return err
    label = o["label"]
    if type(label) not in (int, float, str, bool):
        return f"field 'label' must be a number, string or boolean, got {_type_name(label)}"
    return None


def record(o: dict[str, Any], kind: type) -> Any:
    """The struct of a record the contract accepts (class probabilities as floats, as the typed
    route reads them)."""
    fields = {k: o.get(k) for k in kind.__struct_fields__}
    if type(fields.get("scores")) is dict:
        fields["scores"] = {c: float(p) for c, p in fields["scores"].items()}
    return kind(**fields)


def model_of(o: Any) -> str | None:
    """The model a rejected record names, if it names one."""
    return o.get("model") if isinstance(o, dict) and isinstance(o.get("model"), str) else None
