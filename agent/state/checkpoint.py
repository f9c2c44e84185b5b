"""Atomic checkpoints of everything the agent has counted, joined and judged, with the offsets
they cover.

One file, ``<state_dir>/checkpoint.npz``: numeric arrays plus a JSON document stored as bytes,
written to a temporary file, fsynced and moved into place with ``os.replace``, so a crash at any
point leaves either the old or the new checkpoint, never a torn one. It is read with
``allow_pickle=False``: object arrays (ids, category values) are stored as unicode arrays with a
null mask, never pickled.

On start the consumer seeks to the checkpointed offsets; Kafka's committed offsets are only a
hint for other tools. Records after the checkpoint are processed again, and since their effects
are not in the checkpoint they count exactly once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import orjson

from agent.monitor.concept import WindowConditional
from agent.state.counters import Counters
from agent.monitor.model import ModelMonitor
from agent.monitor.windows import RowStore, Window
from detectors.binning import BinCounts
from detectors.drift import DatasetDriftReport, FeatureSummary
from detectors.conditional import ConditionalVerdict
from detectors.result import DriftResult

__all__ = ["CheckpointStore", "Checkpoint"]

log = logging.getLogger(__name__)
# 2: strings as UTF-8 blobs; 3: small arrays packed per dtype; 4: results as their to_dict() (an
# older agent must refuse it, not read key names as values). 1 to 3 are still read.
FORMAT = 4
READABLE = (1, 2, 3, 4)
Arrays = dict[str, np.ndarray]


def _put_objects(arrays: Arrays, key: str, values: np.ndarray) -> None:
    """Object array -> one UTF-8 blob + per-value lengths + null mask (numbers keep their ``str``).

    A checkpoint carries every retained window's ids and segment values (10^5 strings); one
    ``join`` + ``encode`` is ~10x cheaper than converting them to a numpy unicode array."""
    items = values.tolist()
    if values.size == 0 or pd.api.types.infer_dtype(values, skipna=False) == "string":
        null = np.zeros(len(items), dtype=bool)  # ids, string segments: the usual case
    else:
        null = pd.isna(values)
        if null.any():
            items = ["" if n else str(v) for v, n in zip(items, null.tolist())]
        else:  # numbers (labels, numeric segments): str() in one C-level map
            items = list(map(str, items))
    arrays[key + ".utf8"] = np.frombuffer("".join(items).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    arrays[key + ".len"] = np.fromiter(map(len, items), np.int64, len(items))
    arrays[key + ".null"] = np.asarray(null, dtype=bool)


def _get_objects(arrays: Arrays, key: str) -> np.ndarray:
    if key + ".utf8" in arrays:
        text = arrays[key + ".utf8"].tobytes().decode("utf-8", "surrogatepass")
        ends = np.cumsum(arrays[key + ".len"]).tolist()
        out = np.empty(len(ends), dtype=object)
        out[:] = [text[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    else:  # format 1: a unicode array
        out = arrays[key].astype(object)
    if key + ".null" in arrays:
        out[arrays[key + ".null"]] = None
    return out


def _pack(arrays: Arrays) -> dict[str, list[Any]]:
    """Concatenate the 1-D numeric arrays per dtype (in place): a checkpoint holds hundreds of
    small arrays (bin counts per feature and window) and each npz entry costs far more to write
    than its bytes. Returns ``{key: [dtype, start, length]}`` for :func:`_unpack`."""
    groups: dict[str, list[str]] = {}
    for key, a in arrays.items():
        if a.ndim == 1 and a.dtype.kind in "biuf":
            groups.setdefault(a.dtype.str, []).append(key)
    index: dict[str, list[Any]] = {}
    for j, (dtype, keys) in enumerate(groups.items()):
        start = 0
        for key in keys:
            index[key] = [dtype, start, int(arrays[key].size)]
            start += arrays[key].size
        arrays[f"__packed{j}__"] = np.concatenate([arrays.pop(k) for k in keys])
        index[f"__packed{j}__"] = [dtype, -1, start]
    return index


def _unpack(arrays: Arrays, index: dict[str, list[Any]]) -> None:
    packs = {dtype: arrays.pop(key) for key, (dtype, start, _) in index.items() if start == -1}
    for key, (dtype, start, size) in index.items():
        if start >= 0:
            arrays[key] = packs[dtype][start:start + size]


def _result(r: DriftResult | None) -> dict[str, Any] | None:
    return None if r is None else r.to_dict()


def _unresult(x: dict[str, Any] | list[Any] | None) -> DriftResult | None:
    return None if x is None else DriftResult.from_dict(x)  # a list: written before format 4


def _summary_state(arrays: Arrays, key: str, s: FeatureSummary) -> dict[str, Any]:
    arrays[key + ".counts"] = s.bins.counts
    sample = s.values()
    if sample is not None:
        arrays[key + ".sample"] = sample
    return {"nulls": s.bins.nulls, "has_sample": sample is not None}


def _summary(arrays: Arrays, key: str, meta: dict[str, Any], empty: FeatureSummary) -> FeatureSummary:
    counts = arrays[key + ".counts"].astype(np.int64)
    if counts.shape != empty.bins.counts.shape:
        raise ValueError(f"checkpoint summary {key} has {counts.size} bins, the reference gives "
                         f"{empty.bins.counts.size}: the reference or binning changed since the checkpoint")
    sample = [arrays[key + ".sample"]] if meta["has_sample"] else None
    return FeatureSummary(BinCounts(empty.bins.edges, counts, int(meta["nulls"])), sample, empty.sample_cap)


class _TextCache:
    """Encoded string columns of closed windows (their ids and segment values never change),
    kept from one save to the next so a checkpoint encodes only what is new."""

    def __init__(self) -> None:
        self._old: dict[tuple[Any, ...], tuple[np.ndarray, ...]] = {}
        self._new: dict[tuple[Any, ...], tuple[np.ndarray, ...]] = {}

    def put(self, arrays: Arrays, key: str, values: np.ndarray, token: tuple[Any, ...] | None) -> None:
        """``token`` names content that cannot change (None: encode afresh)."""
        hit = None if token is None else self._old.get(token)
        if hit is None:
            tmp: Arrays = {}
            _put_objects(tmp, "", values)
            hit = (tmp[".utf8"], tmp[".len"], tmp[".null"])
        if token is not None:
            self._new[token] = hit
        arrays[key + ".utf8"], arrays[key + ".len"], arrays[key + ".null"] = hit

    def rotate(self) -> None:
        """End of a save: keep what it used, drop windows that are gone."""
        self._old, self._new = self._new, {}


def _window_state(arrays: Arrays, prefix: str, w: Window, cache: _TextCache | None = None,
                  owner: str = "") -> dict[str, Any]:
    """``owner``: the model's prefix (with the window id, it names a closed window's columns in
    ``cache``, whatever position the window has among the retained ones)."""
    feats = {}
    for i, (name, s) in enumerate(w.features.items()):
        feats[name] = _summary_state(arrays, f"{prefix}.f{i}", s)
    rows = w.rows
    n = rows.n
    cache = cache or _TextCache()
    token = (owner, w.id, n) if w.closed else None  # a closed window takes no more rows
    cache.put(arrays, f"{prefix}.ids", rows.ids[:n], token and (*token, "ids"))
    for col in ("y_pred", "score", "event_s", "y_true", "labelled"):
        arrays[f"{prefix}.{col}"] = getattr(rows, col)[:n]
    for j, (c, v) in enumerate(rows.segments.items()):
        cache.put(arrays, f"{prefix}.seg{j}", v[:n], token and (*token, "seg", c))
    for j, (c, v) in enumerate(rows.proba.items()):
        arrays[f"{prefix}.proba{j}"] = v[:n]
    for j, (c, v) in enumerate(rows.features.items()):
        if v.dtype.kind == "f":
            arrays[f"{prefix}.feat{j}"] = v[:n]
        else:
            cache.put(arrays, f"{prefix}.feat{j}", v[:n], token and (*token, "feat", c))
    verdict = None
    if w.verdict is not None:
        report, pred = w.verdict
        verdict = {**report.state(), "prediction": _result(pred)}
    cond = None
    if w.conditional is not None:
        c = w.conditional.conditional
        cond = {"label_shift": _result(w.conditional.label_shift), "conditional": None if c is None else c.to_dict()}
    return {"id": w.id, "start": w.start_s, "end": w.end_s, "n": w.n, "closed": w.closed, "perf_dirty": w.perf_dirty,
            "settled": w.settled, "conditional": cond, "failed": w.failed,
            "features": list(feats.items()), "prediction": _summary_state(arrays, f"{prefix}.pred", w.prediction),
            "segments": list(rows.segments), "proba": list(rows.proba), "verdict": verdict,
            "row_features": [[c, rows.feature_kinds.get(c, "numeric")] for c in rows.features]}


def _window(arrays: Arrays, prefix: str, d: dict[str, Any], mon: ModelMonitor) -> Window:
    ref = mon.ref
    names = [n for n, _ in d["features"]]
    if names != list(ref.drift.features):
        raise ValueError(f"checkpoint window features {names} differ from the reference's {list(ref.drift.features)}")
    feats = {name: _summary(arrays, f"{prefix}.f{i}", meta, ref.drift.features[name].empty())
             for i, (name, meta) in enumerate(d["features"])}
    pred = _summary(arrays, f"{prefix}.pred", d["prediction"], ref.prediction_drift.empty())
    rows = RowStore.from_columns(
        _get_objects(arrays, f"{prefix}.ids"), arrays[f"{prefix}.y_pred"], arrays[f"{prefix}.score"],
        arrays[f"{prefix}.event_s"], arrays[f"{prefix}.y_true"], arrays[f"{prefix}.labelled"],
        {c: _get_objects(arrays, f"{prefix}.seg{j}") for j, c in enumerate(d["segments"])},
        {c: arrays[f"{prefix}.proba{j}"] for j, c in enumerate(d.get("proba", ()))},
        {c: (arrays[f"{prefix}.feat{j}"] if kind == "numeric" else _get_objects(arrays, f"{prefix}.feat{j}"))
         for j, (c, kind) in enumerate(d.get("row_features", ()))})  # absent before rows kept features
    conditional = None
    if d["conditional"] is not None:
        c = d["conditional"]["conditional"]
        conditional = WindowConditional(_unresult(d["conditional"]["label_shift"]),
                                        None if c is None else ConditionalVerdict.from_dict(c))
    verdict = None
    if (v := d["verdict"]) is not None:
        verdict = (DatasetDriftReport.from_state(v), _unresult(v["prediction"]))
    return Window(d["id"], d["start"], d["end"], feats, pred, rows, n=d["n"], closed=d["closed"],
                  perf_dirty=d["perf_dirty"], verdict=verdict, settled=d["settled"], conditional=conditional,
                  failed=d.get("failed"))  # "failed": absent in checkpoints written before windows could fail


def monitor_state(mon: ModelMonitor, arrays: Arrays, prefix: str, cache: _TextCache | None = None) -> dict[str, Any]:
    """Encode :meth:`ModelMonitor.state`: windows and the waiting labels' arrays into ``arrays``,
    the rest as JSON."""
    st = mon.state()
    pending = st.pop("pending")
    label_list = pending["labels"].tolist()
    _put_objects(arrays, f"{prefix}.pending.ids", pending["ids"])
    _put_objects(arrays, f"{prefix}.pending.labels", pending["labels"])
    arrays[f"{prefix}.pending.ts"] = pending["ts"]
    return {
        **st, "prefix": prefix,
        # what the stored text of each pending label was: pending labels are stored as text, and
        # numpy's float64 labels (every decode route writes numeric labels so) must come back as numbers
        "label_types": sorted({"str" if type(v) is str else "float" for v in label_list}),
        "open": [[k, _window_state(arrays, f"{prefix}.open{k}", w, cache, prefix)] for k, w in st["open"].items()],
        "retained": [_window_state(arrays, f"{prefix}.ret{i}", w, cache, prefix) for i, w in enumerate(st["retained"])],
    }


# type names older checkpoints wrote for numeric pending labels (numpy's among them)
_NUMBER_TYPES = {"int", "float", "bool", "float64", "float32", "int64", "int32", "bool_"}


def _number_or_text(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def restore_monitor(mon: ModelMonitor, d: dict[str, Any], arrays: Arrays, prefix: str) -> None:
    """Decode what :func:`monitor_state` wrote and hand it to :meth:`ModelMonitor.restore`."""
    raw = _get_objects(arrays, f"{prefix}.pending.labels")
    types = set(d["label_types"])
    if types <= _NUMBER_TYPES:
        labels = [None if v is None else float(v) for v in raw]
    elif "str" in types and types - {"str"}:  # both: text that reads as a number was one
        labels = [_number_or_text(v) for v in raw]
    else:
        labels = list(raw)
    pending = {"ids": _get_objects(arrays, f"{prefix}.pending.ids").tolist(), "labels": labels,
               "ts": arrays[f"{prefix}.pending.ts"]}
    mon.restore({**d, "pending": pending,
                 "open": {int(k): _window(arrays, f"{prefix}.open{k}", w, mon) for k, w in d["open"]},
                 "retained": [_window(arrays, f"{prefix}.ret{i}", w, mon) for i, w in enumerate(d["retained"])]})


class Checkpoint:
    """What a checkpoint holds: offsets, counters and each monitor's state."""

    def __init__(self, offsets: dict[tuple[str, int], int], counters: Counters, models: dict[str, Any], arrays: Arrays,
                 extra: dict[str, Any] | None = None) -> None:
        self.extra = extra or {}
        self.offsets = offsets
        self.counters = counters
        self.models = models
        self.arrays = arrays


class CheckpointStore:
    """Reads and atomically writes ``<state_dir>/checkpoint.npz``."""

    def __init__(self, state_dir: Path, fault: Callable[[str], None] | None = None) -> None:
        self.path = Path(state_dir) / "checkpoint.npz"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fault = fault or (lambda point: None)
        self.saves = 0
        self._texts = _TextCache()

    def save(self, offsets: dict[tuple[str, int], int], counters: Counters, monitors: dict[str, ModelMonitor],
             extra: dict[str, Any] | None = None) -> None:
        """``extra``: the service's own JSON-able state (incidents), saved in the same file."""
        arrays: Arrays = {}
        models = {name: monitor_state(mon, arrays, f"m{i}", self._texts)
                  for i, (name, mon) in enumerate(sorted(monitors.items()))}
        self._texts.rotate()
        doc = {"format": FORMAT, "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
               "counters": counters.state(), "models": models, "extra": extra or {}}
        doc["packed"] = _pack(arrays)
        arrays["__doc__"] = np.frombuffer(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}.npz")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            self._fault("checkpoint-written")
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.saves += 1
        self._fault("checkpoint-replaced")

    def load(self) -> Checkpoint | None:
        if not self.path.exists():
            return None
        with np.load(self.path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        doc = orjson.loads(arrays.pop("__doc__").tobytes())
        if doc.get("format") not in READABLE:
            raise ValueError(f"{self.path}: checkpoint format {doc.get('format')!r}, this agent reads {READABLE}")
        _unpack(arrays, doc.get("packed", {}))
        offsets = {(t, int(p)): int(o) for t, p, o in doc["offsets"]}
        return Checkpoint(offsets, Counters.from_state(doc["counters"]), doc["models"], arrays, doc.get("extra"))

    def restore(self, cp: Checkpoint, monitors: dict[str, ModelMonitor]) -> None:
        for name, mon in monitors.items():
            if name in cp.models:
                d = cp.models[name]
                restore_monitor(mon, d, cp.arrays, d["prefix"])
            else:
                log.warning("model %s is new since the checkpoint: starting it empty", name)
