"""Decode and validate polled batches of prediction or label records: one :class:`Decoder`.

Three routes, fastest first, each taking only what it fully understands and leaving the rest to
the next, so every route gives the same columns (dtypes and values) for the records it takes:

1. the native scanner (``agent/decode/_scan.c``): one pass per record straight into float64
   column buffers;
2. typed msgspec structs generated per model from the reference's features;
3. the exact route (:mod:`agent.decode.contract`): orjson and field-by-field checks that name
   every problem.

Everything after decoding (timestamps, feature columns) is numpy over the batch. A record that
breaks the message contract is returned as a :class:`Rejected` with a reason that names the field,
so the caller can dead-letter and count it; nothing is dropped silently, and no record's content
makes a method raise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from operator import attrgetter
from typing import Any, Iterator, Sequence

import msgspec
import numpy as np
import pandas as pd

from agent.decode import contract
from agent.decode.contract import LONG_NUMBER, Label, Prediction
from agent.decode.features import FeatureColumns, FeatureSpec, TypedFeatures, extract_features, merge_columns
from agent.decode.merge import concat_labels, concat_predictions, first_seen_order, merge_labels, merge_predictions
from agent.decode.records import Labels, Predictions, Rejected, scanned_timestamps, timestamps
from agent.decode.scanner import NATIVE, RecordScanner, Scanned

__all__ = ["Decoder", "Rejected", "Predictions", "Labels", "LONG_NUMBER"]

log = logging.getLogger(__name__)

_ID, _MODEL, _SCORE, _SCORES, _FEATURES = map(attrgetter, ("prediction_id", "model", "score", "scores", "features"))
_LABEL = msgspec.json.Decoder(Label).decode
_BAD_TIMESTAMP = "field 'timestamp' must be RFC 3339 or epoch seconds/milliseconds"

Decoded = tuple[dict[str, Any], list[Rejected]]


class Decoder:
    """Decodes batches for a fixed set of models.

    ``models`` maps each model to the keys its ``features`` object carries (a
    :class:`~agent.decode.features.FeatureSpec`), or to None to keep that model's feature objects
    as decoded dicts (:attr:`Predictions.features`) instead of typed columns. With ``native`` (and
    the extension built) the scanner runs first; ``max_bytes`` rejects larger records unread.
    Used from one thread (the scanner keeps per-column string caches).
    """

    def __init__(self, models: Mapping[str, FeatureSpec | None], max_bytes: int = 1 << 20, native: bool = True) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        specs = {m: s for m, s in models.items() if s is not None}
        self.models = frozenset(models)
        self.max_bytes = max_bytes
        self.typed = TypedFeatures(specs) if specs else None
        self.scanner = RecordScanner(specs) if native and NATIVE and specs else None
        self._scanned_known = (None if self.scanner is None
                               else np.array([m in self.models for m in self.scanner.models], dtype=bool))

    @property
    def route(self) -> str:
        """What decodes a clean record: the native scanner, or msgspec when it is not built."""
        return "native" if self.scanner is not None else "msgspec"

    # -- the two streams -------------------------------------------------------------------
    def predictions(self, values: Sequence[bytes | None], broker_ms: np.ndarray) -> Decoded:
        """Prediction records: valid ones grouped by model (in order of each model's first
        record), the rest rejected with a reason. Models with a spec get typed feature columns
        (:attr:`Predictions.columns`), others the decoded feature objects.

        If the batch's fast routes ever raise, the batch is decoded again record by record through
        the exact route, and a record that still raises is rejected with the exception named."""
        try:
            if self.scanner is None or not len(values):
                out, rejected = self._python_predictions(values, broker_ms, typed=True)
                return first_seen_order(out, {}), rejected
            return self._native_predictions(values, broker_ms)
        except Exception as e:  # noqa: BLE001 - a record's content must never stop the agent
            _log_fallback("prediction", len(values), e)
            return self._record_by_record(values, broker_ms, labels=False)

    def labels(self, values: Sequence[bytes | None], broker_ms: np.ndarray) -> Decoded:
        """Label records, as :meth:`predictions`."""
        try:
            if self.scanner is None or not len(values):
                out, rejected = self._python_labels(values, broker_ms)
                return first_seen_order(out, {}), rejected
            return self._native_labels(values, broker_ms)
        except Exception as e:  # noqa: BLE001 - a record's content must never stop the agent
            _log_fallback("label", len(values), e)
            return self._record_by_record(values, broker_ms, labels=True)

    # -- route 1: the native scanner, merged with the others' groups ------------------------
    def _native_predictions(self, values: Sequence[bytes | None], broker_ms: np.ndarray) -> Decoded:
        scanner = self.scanner
        assert scanner is not None and self._scanned_known is not None
        s = scanner.scan(values, self.max_bytes)
        assert s.score is not None
        with np.errstate(invalid="ignore"):
            ok = s.ok & self._scanned_known[s.model] & ~((s.score < 0.0) | (s.score > 1.0))
        broker = np.asarray(broker_ms)
        slow, rejected = self._rest(values, ok, broker, labels=False)
        out: dict[str, Any] = {}
        for k, model, pos, ts, ids in _scanned_groups(scanner, s, ok, broker, rejected):
            fast = Predictions(model, pos, ids, ts, s.value[pos], s.score[pos], None, None, scanner.columns(s, k, pos))
            out[model] = merge_predictions(fast, slow.pop(model), scanner.specs[model]) if model in slow else fast
        return first_seen_order(out, slow), sorted(rejected, key=lambda r: r.position)

    def _native_labels(self, values: Sequence[bytes | None], broker_ms: np.ndarray) -> Decoded:
        scanner = self.scanner
        assert scanner is not None and self._scanned_known is not None
        s = scanner.scan(values, self.max_bytes, labels=True)
        ok = s.ok & self._scanned_known[s.model]
        broker = np.asarray(broker_ms)
        slow, rejected = self._rest(values, ok, broker, labels=True)
        out: dict[str, Any] = {}
        for _, model, pos, ts, ids in _scanned_groups(scanner, s, ok, broker, rejected):
            fast = Labels(model, pos, ids, ts, s.value[pos])
            out[model] = merge_labels(fast, slow.pop(model)) if model in slow else fast
        return first_seen_order(out, slow), sorted(rejected, key=lambda r: r.position)

    def _rest(self, values: Sequence[bytes | None], ok: np.ndarray, broker: np.ndarray, labels: bool) -> Decoded:
        """Routes 2 and 3 over the records the scanner left, positions mapped back to the batch."""
        rest = np.flatnonzero(~ok)
        if not rest.size:
            return {}, []
        part = [values[i] for i in rest.tolist()]
        groups, rejected = (self._python_labels(part, broker[rest]) if labels
                            else self._python_predictions(part, broker[rest], typed=True))
        for g in groups.values():
            g.positions = rest[g.positions]
        return groups, [Rejected(int(rest[r.position]), r.reason, r.model) for r in rejected]

    # -- routes 2 and 3: typed msgspec structs, then the exact route ------------------------
    def _python_predictions(self, values: Sequence[bytes | None], broker_ms: np.ndarray, typed: bool) -> Decoded:
        groups, rejected = self._by_model(values, broker_ms, Prediction, typed)
        spec_of = self.typed.specs if typed and self.typed is not None else {}
        out: dict[str, Predictions] = {}
        for model, pos, recs, ts, ids in groups:
            score = np.array(list(map(_SCORE, recs)), dtype=float)  # None -> NaN
            scores = list(map(_SCORES, recs))
            columns = self._typed_columns(model, recs) if model in spec_of else None
            out[model] = Predictions(model, pos, ids, ts, _column([r.prediction for r in recs]), score,
                                     None if columns is not None else [r.features for r in recs],
                                     scores if any(x is not None for x in scores) else None, columns)
        return out, rejected

    def _python_labels(self, values: Sequence[bytes | None], broker_ms: np.ndarray) -> Decoded:
        groups, rejected = self._by_model(values, broker_ms, Label, typed=True)
        return {model: Labels(model, pos, ids, ts, _column([r.label for r in recs]))
                for model, pos, recs, ts, ids in groups}, rejected

    def _by_model(self, values: Sequence[bytes | None], broker_ms: np.ndarray, kind: type, typed: bool,
                  ) -> tuple[Iterator[tuple[str, np.ndarray, list[Any], np.ndarray, np.ndarray]], list[Rejected]]:
        """Decode, then per model: positions, valid structs, epoch seconds and ids; records with an
        unreadable timestamp join the rejected list (sorted by position once all are known)."""
        structs, rejected = self._structs(values, kind, typed)

        def groups() -> Iterator[tuple[str, np.ndarray, list[Any], np.ndarray, np.ndarray]]:
            for model, pos in _group(structs).items():
                recs = [structs[i] for i in pos]
                ts, bad = timestamps([r.timestamp for r in recs], np.asarray(broker_ms)[pos])
                if bad.any():
                    rejected.extend(Rejected(int(pos[j]), _BAD_TIMESTAMP, model) for j in np.flatnonzero(bad))
                    pos, ts, recs = pos[~bad], ts[~bad], [r for r, b in zip(recs, bad) if not b]
                    if not recs:  # every record of this model rejected: no group
                        continue
                ids = np.empty(len(recs), dtype=object)
                ids[:] = [r.prediction_id for r in recs]
                yield model, pos, recs, ts, ids
            rejected.sort(key=lambda r: r.position)

        return groups(), rejected

    def _structs(self, values: Sequence[bytes | None], kind: type, typed: bool) -> tuple[list[Any], list[Rejected]]:
        """Structs for valid records (None elsewhere) and the rejected ones with their reasons."""
        structs, slow = self._typed_structs(values, kind) if typed else ([None] * len(values), list(range(len(values))))
        # Contract rules a type cannot express, checked over the batch.
        ok_pos = [i for i, s in enumerate(structs) if s is not None]
        if ok_pos:
            good = [structs[i] for i in ok_pos]
            models = self.models
            if all(map(_ID, good)) and set(map(_MODEL, good)) <= models:  # the usual case, in C
                bad = np.zeros(len(good), dtype=bool)
            else:
                bad = np.fromiter((not s.prediction_id or s.model not in models for s in good), bool, len(good))
            if kind is Prediction:  # typed prediction structs share these attributes
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
        check = contract.prediction_error if kind is Prediction else contract.label_error
        for i in slow:
            o, err = contract.load(values[i], self.max_bytes)
            if err is None:
                err = check(o, self.models)
            if err is None:  # valid, but outside what the typed decoder accepts (e.g. a huge integer)
                structs[i] = contract.record(o, kind)
                continue
            rejected.append(Rejected(i, err, contract.model_of(o)))
        return structs, rejected

    def _typed_structs(self, values: Sequence[bytes | None], kind: type) -> tuple[list[Any], list[int]]:
        """Route 2, one msgspec call per record (as fast as one call per batch, and a record can
        never bleed into its neighbour): predictions into the per-model feature structs, labels
        into one struct. Returns the structs (None where refused) and those positions, which go to
        the exact route that explains what is wrong.

        msgspec neither checks the UTF-8 of what it skips nor rounds long number tokens as Python
        does (:data:`LONG_NUMBER`): such records take the exact route too."""
        if kind is Prediction:
            if self.typed is None:
                return [None] * len(values), list(range(len(values)))
            decode = self.typed.decode
        else:
            decode = _LABEL
        max_bytes = self.max_bytes
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

    def _typed_columns(self, model: str, recs: list[Any]) -> FeatureColumns:
        """Columns of one model's records, each group (strict struct, nullable struct, dict) by its
        own route, merged back in record order."""
        typed = self.typed
        assert typed is not None
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

    # -- the record-by-record fallback -------------------------------------------------------
    def _record_by_record(self, values: Sequence[bytes | None], broker_ms: np.ndarray, labels: bool) -> Decoded:
        """Each record alone through the exact route; one that raises there too is rejected with
        the exception named, so the rest of its batch goes on."""
        broker = np.asarray(broker_ms)
        parts: dict[str, list[Any]] = {}
        rejected: list[Rejected] = []
        for i, v in enumerate(values):
            try:
                groups, rej = (self._python_labels([v], broker[i:i + 1]) if labels
                               else self._python_predictions([v], broker[i:i + 1], typed=False))
            except Exception as e:  # noqa: BLE001 - the record, not the agent, is at fault
                rejected.append(Rejected(i, f"record could not be decoded ({type(e).__name__}: {e})"[:300], None))
                continue
            rejected.extend(Rejected(i, r.reason, r.model) for r in rej)
            for model, g in groups.items():
                g.positions = np.array([i], dtype=np.int64)
                parts.setdefault(model, []).append(g)
        if labels:
            return {model: concat_labels(model, gs) for model, gs in parts.items()}, rejected
        return {model: concat_predictions(model, gs, self.typed) for model, gs in parts.items()}, rejected


def _log_fallback(stream: str, n: int, e: BaseException) -> None:
    log.warning("a %s batch of %d records raised %s in its fast decode (%s); decoding it record by record",
                stream, n, type(e).__name__, str(e)[:200])


def _scanned_groups(scanner: RecordScanner, s: Scanned, ok: np.ndarray, broker: np.ndarray, rejected: list[Rejected],
                    ) -> Iterator[tuple[int, str, np.ndarray, np.ndarray, np.ndarray]]:
    """Per model the scanner took rows of: its index, name, positions, epoch seconds and ids
    (rows with an unreadable timestamp join ``rejected``)."""
    n_models = len(scanner.models)
    ids_all: np.ndarray | None = None
    for k, model in enumerate(scanner.models):
        pos = np.flatnonzero(ok if n_models == 1 else ok & (s.model == k))
        if not pos.size:
            continue
        ts, bad = scanned_timestamps(s, pos, broker[pos])
        if bad.any():
            rejected.extend(Rejected(p, _BAD_TIMESTAMP, model) for p in pos[bad].tolist())
            pos, ts = pos[~bad], ts[~bad]
            if not pos.size:
                continue
        if ids_all is None:
            ids_all = np.empty(len(s.ids), dtype=object)
            ids_all[:] = s.ids
        yield k, model, pos, ts, ids_all if pos.size == ids_all.size else ids_all[pos]


def _plain(v: bytes) -> bool:
    """ASCII, or valid UTF-8 (msgspec skips unknown keys and values without checking them)."""
    if v.isascii():
        return True
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
