"""Decode and validate a polled batch of prediction or label records.

A clean batch is decoded and type-checked in one C call (msgspec, into typed structs); only
records that fail it take the slow path (orjson + field-by-field checks) that names what is
wrong. Everything after decoding (timestamps, feature columns, schema checks) is numpy over the
batch.
A record that breaks the message contract is returned as a :class:`Rejected` with a reason that
names the field, so the caller can dead-letter and count it; nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import math
import re
from operator import attrgetter
from typing import Any, Callable, Collection, Iterator, Sequence

import msgspec
import numpy as np
import orjson
import pandas as pd

from agent.decode.features import FeatureColumns, FeatureSpec, TypedFeatures, extract_features, merge_columns
from agent.decode.records import Labels, Predictions, Rejected, scanned_timestamps, timestamps
from agent.decode.scanner import RecordScanner, Scanned

__all__ = ["Rejected", "Predictions", "Labels", "decode_predictions", "decode_labels", "LONG_NUMBER"]

log = logging.getLogger(__name__)

_NUMBER = (int, float)
# A run of number characters this long is converted with Python's own rules (float()): the C
# parsers here round correctly only on shorter tokens (msgspec 0.23 reads "0." + 99,999 zeros +
# "1e1000000", which is +inf, as 0.0). Strings with long digit runs take the same, slower route.
LONG_NUMBER = re.compile(rb"[-+.0-9eE]{128,}")


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


class _Prediction(msgspec.Struct):
    prediction_id: str
    model: str
    features: dict[str, _FeatureValue]
    prediction: bool | float | str  # float, not int: an integer beyond a double's range is refused
    score: float | None = None
    scores: dict[str, float] | None = None
    timestamp: float | str | None = None


class _Label(msgspec.Struct):
    prediction_id: str
    model: str
    label: bool | float | str
    timestamp: float | str | None = None


_ID, _MODEL, _SCORE, _SCORES, _FEATURES = map(attrgetter, ("prediction_id", "model", "score", "scores", "features"))
_DECODERS = {_Prediction: msgspec.json.Decoder(_Prediction).decode, _Label: msgspec.json.Decoder(_Label).decode}


def _fast(values: Sequence[bytes | None], kind: type, max_bytes: int, typed: TypedFeatures | None = None,
          ) -> tuple[list[Any], list[int]]:
    """Typed decode in C (msgspec), one call per record (as fast as one call per batch, and a
    record can never bleed into its neighbour): prediction records into the per-model feature
    structs of ``typed`` (without ``typed``, or what they refuse, goes to the exact route), label
    records into one struct. Returns the structs (None where the typed decode refused) and those
    positions, which go to the exact route that explains what is wrong.

    msgspec does not check the UTF-8 of what it skips, nor round long number tokens as Python
    does (:data:`LONG_NUMBER`): such records take the exact route too."""
    if kind is _Prediction:
        if typed is None or not typed.specs:
            return [None] * len(values), list(range(len(values)))
        decode: Callable[[bytes], Any] = typed.decode
    else:
        decode = _DECODERS[kind]
    if (values and None not in values and max(map(len, values)) <= max_bytes  # type: ignore[arg-type]
            and all(map(_plain, values)) and not any(map(LONG_NUMBER.search, values))):  # type: ignore[arg-type]
        try:
            return [decode(v) for v in values], []  # the usual case: a clean batch
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass
    out: list[Any] = [None] * len(values)
    slow: list[int] = []
    for i, v in enumerate(values):
        if v is None or len(v) > max_bytes or not _plain(v) or LONG_NUMBER.search(v):
            slow.append(i)
            continue
        try:
            out[i] = decode(v)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nested too deeply
            slow.append(i)
    return out, slow


def _plain(v: bytes) -> bool:
    """ASCII, or valid UTF-8 (msgspec skips unknown keys and values without checking them)."""
    if v.isascii():
        return True
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _load(v: bytes | None, max_bytes: int) -> tuple[Any, str | None]:
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


def _prediction_error(o: Any, known_models: Collection[str]) -> str | None:
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


def _label_error(o: Any, known_models: Collection[str]) -> str | None:
    err = _envelope_error(o, ("prediction_id", "model", "label"), known_models)
    if err is not None:
        return err
    label = o["label"]
    if type(label) not in (int, float, str, bool):
        return f"field 'label' must be a number, string or boolean, got {_type_name(label)}"
    return None


def _decode(values: Sequence[bytes | None], kind: type, known_models: Collection[str], max_bytes: int,
            typed: TypedFeatures | None = None) -> tuple[list[Any], list[Rejected]]:
    """Structs for valid records (None elsewhere) and the rejected ones with their reasons."""
    structs, slow = _fast(values, kind, max_bytes, typed)
    # Contract rules a type cannot express, checked over the batch.
    ok_pos = [i for i, s in enumerate(structs) if s is not None]
    if ok_pos:
        good = [structs[i] for i in ok_pos]
        if all(map(_ID, good)) and set(map(_MODEL, good)) <= set(known_models):  # the usual case, in C
            bad = np.zeros(len(good), dtype=bool)
        else:
            bad = np.fromiter((not s.prediction_id or s.model not in known_models for s in good), bool, len(good))
        if kind is _Prediction:  # typed prediction structs share these attributes
            scores = np.array(list(map(_SCORE, good)), dtype=float)  # None -> NaN
            with np.errstate(invalid="ignore"):
                bad |= (scores < 0.0) | (scores > 1.0)
            class_scores = list(map(_SCORES, good))
            if class_scores.count(None) < len(good):  # multiclass records carry {class: probability}
                for j, ss in enumerate(class_scores):
                    if ss is not None and not all(0.0 <= p <= 1.0 for p in ss.values()):
                        bad[j] = True
        for j in np.flatnonzero(bad):
            structs[ok_pos[j]] = None
            slow.append(ok_pos[j])
    rejected: list[Rejected] = []
    check = _prediction_error if kind is _Prediction else _label_error
    fields = kind.__struct_fields__
    for i in slow:
        o, err = _load(values[i], max_bytes)
        if err is None:
            err = check(o, known_models)
        if err is None:  # valid, but outside what the typed decoder accepts (e.g. a huge integer)
            fields_ = {k: o.get(k) for k in fields}
            if type(fields_.get("scores")) is dict:  # probabilities as the typed route reads them: floats
                fields_["scores"] = {c: float(p) for c, p in fields_["scores"].items()}
            structs[i] = kind(**fields_)
            continue
        model = o.get("model") if isinstance(o, dict) and isinstance(o.get("model"), str) else None
        rejected.append(Rejected(i, err, model))
    return structs, rejected


def _group(structs: list[Any]) -> dict[str, np.ndarray]:
    keep = [i for i, s in enumerate(structs) if s is not None]
    if not keep:
        return {}
    pos = np.asarray(keep, dtype=np.int64)
    names = np.empty(len(keep), dtype=object)
    names[:] = [structs[i].model for i in keep]
    first = names[0]
    if (names == first).all():
        return {str(first): pos}
    return {str(m): pos[names == m] for m in pd.unique(names)}


def _column(values: list[Any]) -> np.ndarray:
    """A prediction or label column as every route writes it: float64 when every value is a
    number or a boolean (``true`` is 1.0, as the scanner writes it), else an object array of
    floats and strings, so one batch's rows compare equal whichever route decoded them."""
    if str not in set(map(type, values)):  # not np.asarray(dtype=float): it would parse "1" as 1.0
        return np.asarray(values, dtype=float)
    out = np.empty(len(values), dtype=object)
    out[:] = [v if type(v) is str else float(v) for v in values]
    return out


def _by_model(values: Sequence[bytes | None], broker_ms: np.ndarray, kind: type, known_models: Collection[str],
              max_bytes: int, typed: TypedFeatures | None = None,
              ) -> tuple[Iterator[tuple[str, np.ndarray, list[Any], np.ndarray, np.ndarray]], list[Rejected]]:
    """Decode, then per model: positions, valid structs, epoch seconds and ids; records with an
    unreadable timestamp join the rejected list (sorted by position once all are known)."""
    structs, rejected = _decode(values, kind, known_models, max_bytes, typed)

    def groups() -> Iterator[tuple[str, np.ndarray, list[Any], np.ndarray, np.ndarray]]:
        for model, pos in _group(structs).items():
            recs = [structs[i] for i in pos]
            ts, bad = timestamps([r.timestamp for r in recs], np.asarray(broker_ms)[pos])
            if bad.any():
                for j in np.flatnonzero(bad):
                    rejected.append(Rejected(int(pos[j]), "field 'timestamp' must be RFC 3339 or epoch "
                                             "seconds/milliseconds", model))
                pos, ts, recs = pos[~bad], ts[~bad], [r for r, b in zip(recs, bad) if not b]
                if not recs:  # every record of this model rejected: no group
                    continue
            ids = np.empty(len(recs), dtype=object)
            ids[:] = [r.prediction_id for r in recs]
            yield model, pos, recs, ts, ids
        rejected.sort(key=lambda r: r.position)

    return groups(), rejected


def decode_predictions(
    values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int = 1 << 20,
    typed: TypedFeatures | None = None, scanner: RecordScanner | None = None,
) -> tuple[dict[str, Predictions], list[Rejected]]:
    """Decode prediction records; valid ones grouped by model, the rest rejected with a reason.

    With ``typed``, the models it covers get their feature columns built here
    (:attr:`Predictions.columns`); others keep the raw feature objects. With ``scanner`` (built
    from the same specs as ``typed``), records are scanned natively first and only the ones it
    leaves take the msgspec route; the result is the same.

    Never raises on a record's content: if the batch's fast routes raise, the batch is decoded
    again record by record through the exact route, and a record that still raises is rejected
    with the exception named."""
    try:
        return _predictions(values, broker_ms, known_models, max_bytes, typed, scanner)
    except Exception as e:  # noqa: BLE001 - a record's content must never stop the agent
        _log_fallback("prediction", len(values), e)
        return _record_by_record(values, broker_ms, lambda v, b: _decode_predictions(v, b, known_models, max_bytes, None),
                                 lambda model, parts: _concat_predictions(model, parts, typed))


def _predictions(
    values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int,
    typed: TypedFeatures | None, scanner: RecordScanner | None,
) -> tuple[dict[str, Predictions], list[Rejected]]:
    if scanner is None or not len(values):
        out, rejected = _decode_predictions(values, broker_ms, known_models, max_bytes, typed)
        return _first_seen_order(out, {}), rejected
    s = scanner.scan(values, max_bytes)
    assert s.score is not None
    with np.errstate(invalid="ignore"):
        ok = s.ok & _known(scanner, known_models)[s.model] & ~((s.score < 0.0) | (s.score > 1.0))
    score = s.score
    return _native_groups(
        values, broker_ms, scanner, s, ok, lambda v, b: _decode_predictions(v, b, known_models, max_bytes, typed),
        lambda k, model, pos, ts, ids: Predictions(model, pos, ids, ts, s.value[pos], score[pos], None, None,
                                                   scanner.columns(s, k, pos)),
        lambda model, a, b: _merge_predictions(a, b, scanner.specs[model]))


def _decode_predictions(
    values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int,
    typed: TypedFeatures | None,
) -> tuple[dict[str, Predictions], list[Rejected]]:
    groups, rejected = _by_model(values, broker_ms, _Prediction, known_models, max_bytes, typed)
    out: dict[str, Predictions] = {}
    for model, pos, recs, ts, ids in groups:
        score = np.array(list(map(_SCORE, recs)), dtype=float)  # None -> NaN
        scores = list(map(_SCORES, recs))
        columns = _typed_columns(typed, model, recs) if typed is not None and model in typed.specs else None
        out[model] = Predictions(model, pos, ids, ts, _column([r.prediction for r in recs]), score,
                                 None if columns is not None else [r.features for r in recs],
                                 scores if any(x is not None for x in scores) else None, columns)
    return out, rejected


def _typed_columns(typed: TypedFeatures, model: str, recs: list[Any]) -> FeatureColumns:
    """Columns of one model's records, each group (strict struct, nullable struct, dict) by its
    own route, merged back in record order."""
    spec = typed.specs[model]
    types = set(map(type, recs))
    if len(types) == 1 and types.pop() in typed.strict:  # a clean batch: one route
        return typed.columns(model, list(map(_FEATURES, recs)), strict=True)
    kinds = np.fromiter((0 if type(r) in typed.strict else 1 if type(r) in typed.nullable else 2 for r in recs),
                        np.int8, len(recs))
    parts = []
    for kind in (0, 1, 2):
        idx = np.flatnonzero(kinds == kind)
        if idx.size == 0:
            continue
        feats = [recs[i].features for i in idx]
        cols = (typed.columns(model, feats, strict=kind == 0) if kind < 2
                else extract_features(feats, spec.numeric, spec.categorical, spec.extra))
        parts.append((idx, cols))
    return merge_columns(len(recs), spec, parts)


def decode_labels(
    values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int = 1 << 20,
    scanner: RecordScanner | None = None,
) -> tuple[dict[str, Labels], list[Rejected]]:
    """Decode label records; valid ones grouped by model, the rest rejected with a reason
    (scanned natively first with ``scanner``, and never raising on content, as
    :func:`decode_predictions`)."""
    try:
        return _labels(values, broker_ms, known_models, max_bytes, scanner)
    except Exception as e:  # noqa: BLE001 - a record's content must never stop the agent
        _log_fallback("label", len(values), e)
        return _record_by_record(values, broker_ms, lambda v, b: _decode_labels(v, b, known_models, max_bytes),
                                 _concat_labels)


def _labels(values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str], max_bytes: int,
            scanner: RecordScanner | None) -> tuple[dict[str, Labels], list[Rejected]]:
    if scanner is None or not len(values):
        out, rejected = _decode_labels(values, broker_ms, known_models, max_bytes)
        return _first_seen_order(out, {}), rejected
    s = scanner.scan(values, max_bytes, labels=True)
    ok = s.ok & _known(scanner, known_models)[s.model]
    return _native_groups(values, broker_ms, scanner, s, ok,
                          lambda v, b: _decode_labels(v, b, known_models, max_bytes),
                          lambda k, model, pos, ts, ids: Labels(model, pos, ids, ts, s.value[pos]),
                          lambda model, a, b: _merge_labels(a, b))


def _decode_labels(values: Sequence[bytes | None], broker_ms: np.ndarray, known_models: Collection[str],
                   max_bytes: int) -> tuple[dict[str, Labels], list[Rejected]]:
    groups, rejected = _by_model(values, broker_ms, _Label, known_models, max_bytes)
    out = {model: Labels(model, pos, ids, ts, _column([r.label for r in recs])) for model, pos, recs, ts, ids in groups}
    return out, rejected


# ---- the record-by-record fallback ----

def _log_fallback(stream: str, n: int, e: BaseException) -> None:
    log.warning("a %s batch of %d records raised %s in its fast decode (%s); decoding it record by record",
                stream, n, type(e).__name__, str(e)[:200])


def _record_by_record(values: Sequence[bytes | None], broker_ms: np.ndarray,
                      exact: Callable[[list[bytes | None], np.ndarray], tuple[dict[str, Any], list[Rejected]]],
                      concat: Callable[[str, list[Any]], Any]) -> tuple[dict[str, Any], list[Rejected]]:
    """Each record alone through the exact route; one that raises there too is rejected with the
    exception named, so the rest of its batch goes on."""
    broker = np.asarray(broker_ms)
    parts: dict[str, list[Any]] = {}
    rejected: list[Rejected] = []
    for i, v in enumerate(values):
        try:
            groups, rej = exact([v], broker[i:i + 1])
        except Exception as e:  # noqa: BLE001 - the record, not the agent, is at fault
            rejected.append(Rejected(i, f"record could not be decoded ({type(e).__name__}: {e})"[:300], None))
            continue
        rejected.extend(Rejected(i, r.reason, r.model) for r in rej)
        for model, g in groups.items():
            g.positions = np.array([i], dtype=np.int64)
            parts.setdefault(model, []).append(g)
    return {model: concat(model, gs) for model, gs in parts.items()}, rejected


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    if len({a.dtype for a in arrays}) == 1:
        return np.concatenate(arrays)
    return np.concatenate([a.astype(object) for a in arrays])


def _concat_predictions(model: str, parts: list[Predictions], typed: TypedFeatures | None) -> Predictions:
    """One model's single-record groups (dict route: raw features) as one group, with typed
    columns where ``typed`` covers the model, as the fast routes give them."""
    feats = [f for p in parts for f in (p.features or [])]
    scores = [x for p in parts for x in (p.scores or [None] * len(p))]
    columns = None
    if typed is not None and model in typed.specs:
        spec = typed.specs[model]
        columns = extract_features(feats, spec.numeric, spec.categorical, spec.extra)
    return Predictions(model, _concat([p.positions for p in parts]), _concat([p.ids for p in parts]),
                       _concat([p.event_s for p in parts]), _concat([p.prediction for p in parts]),
                       _concat([p.score for p in parts]), None if columns is not None else feats,
                       scores if any(x is not None for x in scores) else None, columns)


def _concat_labels(model: str, parts: list[Labels]) -> Labels:
    return Labels(model, _concat([p.positions for p in parts]), _concat([p.ids for p in parts]),
                  _concat([p.event_s for p in parts]), _concat([p.label for p in parts]))


# ---- merging the native scan with the exact route ----

def _known(scanner: RecordScanner, known_models: Collection[str]) -> np.ndarray:
    return np.array([m in known_models for m in scanner.models], dtype=bool)


def _native_groups(values: Sequence[bytes | None], broker_ms: np.ndarray, scanner: RecordScanner, s: Scanned,
                   ok: np.ndarray, exact: Callable[[list[bytes | None], np.ndarray], tuple[dict[str, Any], list[Rejected]]],
                   make: Callable[[int, str, np.ndarray, np.ndarray, np.ndarray], Any],
                   merge: Callable[[str, Any, Any], Any]) -> tuple[dict[str, Any], list[Rejected]]:
    """Groups of the scanned rows (``ok``) made per model by ``make``, the rest decoded by
    ``exact``, merged per model in record order."""
    broker = np.asarray(broker_ms)
    slow, rejected = _rest(values, ok, broker, exact)
    out: dict[str, Any] = {}
    for k, model in enumerate(scanner.models):
        pos = _rows(ok, s.model, k, len(scanner.models))
        if pos.size:
            pos, ts, ids = _scanned_rows(s, pos, broker, model, rejected)
        if pos.size:
            fast = make(k, model, pos, ts, ids)
            out[model] = merge(model, fast, slow.pop(model)) if model in slow else fast
    return _first_seen_order(out, slow), sorted(rejected, key=lambda r: r.position)


def _first_seen_order(out: dict[str, Any], slow: dict[str, Any]) -> dict[str, Any]:
    """Both routes' groups, ordered by each model's first valid record."""
    out.update(slow)
    if len(out) < 2:
        return out
    return dict(sorted(out.items(), key=lambda kv: int(kv[1].positions[0])))


def _rows(ok: np.ndarray, model: np.ndarray, k: int, n_models: int) -> np.ndarray:
    return np.flatnonzero(ok if n_models == 1 else ok & (model == k))


def _rest(values: Sequence[bytes | None], ok: np.ndarray, broker: np.ndarray,
          decode: Callable[[list[bytes | None], np.ndarray], tuple[dict[str, Any], list[Rejected]]],
          ) -> tuple[dict[str, Any], list[Rejected]]:
    """The exact route over the records the scanner left, positions mapped back to the batch."""
    rest = np.flatnonzero(~ok)
    if not rest.size:
        return {}, []
    groups, rejected = decode([values[i] for i in rest.tolist()], broker[rest])
    for g in groups.values():
        g.positions = rest[g.positions]
    return groups, [Rejected(int(rest[r.position]), r.reason, r.model) for r in rejected]


def _scanned_rows(s: Scanned, pos: np.ndarray, broker: np.ndarray, model: str, rejected: list[Rejected],
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, epoch seconds and ids of scanned rows; unreadable timestamps are rejected."""
    ts, bad = scanned_timestamps(s, pos, broker[pos])
    if bad.any():
        for p in pos[bad].tolist():
            rejected.append(Rejected(p, "field 'timestamp' must be RFC 3339 or epoch seconds/milliseconds", model))
        pos, ts = pos[~bad], ts[~bad]
    ids = np.empty(len(s.ids), dtype=object)
    ids[:] = s.ids
    return pos, ts, ids if pos.size == ids.size else ids[pos]


def _interleave(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merged positions and where each part's rows go in them."""
    pos = np.sort(np.concatenate([a, b]))
    return pos, np.searchsorted(pos, a), np.searchsorted(pos, b)


def _scatter(n: int, ia: np.ndarray, a: np.ndarray, ib: np.ndarray, b: np.ndarray) -> np.ndarray:
    dtype = a.dtype if a.dtype == b.dtype else object
    out = np.empty(n, dtype=dtype)
    out[ia] = a if dtype != object else a.astype(object)
    out[ib] = b if dtype != object else b.astype(object)
    return out


def _merge_predictions(a: Predictions, b: Predictions, spec: FeatureSpec) -> Predictions:
    pos, ia, ib = _interleave(a.positions, b.positions)
    n = pos.size
    scores = None
    if b.scores is not None:
        scores = [None] * n
        for j, v in zip(ib.tolist(), b.scores):
            scores[j] = v
    assert a.columns is not None and b.columns is not None
    return Predictions(a.model, pos, _scatter(n, ia, a.ids, ib, b.ids), _scatter(n, ia, a.event_s, ib, b.event_s),
                       _scatter(n, ia, a.prediction, ib, b.prediction), _scatter(n, ia, a.score, ib, b.score), None,
                       scores, merge_columns(n, spec, [(ia, a.columns), (ib, b.columns)]))


def _merge_labels(a: Labels, b: Labels) -> Labels:
    pos, ia, ib = _interleave(a.positions, b.positions)
    n = pos.size
    return Labels(a.model, pos, _scatter(n, ia, a.ids, ib, b.ids), _scatter(n, ia, a.event_s, ib, b.event_s),
                  _scatter(n, ia, a.label, ib, b.label))
