"""Send a table (CSV, Parquet, JSONL) to Kafka as prediction and label records.

Used to replay a production log or a benchmark dataset through a real broker: predictions in
file order, each label following its prediction after ``label_delay`` records (or seconds),
at an optional rate, with a progress bar.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import numpy as np
import orjson
import pandas as pd
from tqdm import tqdm

__all__ = ["ReplaySpec", "prediction_records", "label_records", "replay"]


class Sink(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> Any: ...
    def flush(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """Column mapping from a table to the message contract."""

    model: str
    id_column: str = "id"
    timestamp_column: str | None = "timestamp"
    prediction_column: str = "y_pred"
    score_column: str | None = "y_pred_proba"
    label_column: str | None = None
    features: tuple[str, ...] | None = None
    model_version: str | None = None


def _timestamps(frame: pd.DataFrame, column: str | None) -> list[Any]:
    if column is None or column not in frame.columns:
        return [None] * len(frame)
    ts = pd.to_datetime(frame[column], utc=True)
    return list(ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _native(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def prediction_records(frame: pd.DataFrame, spec: ReplaySpec) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` per row, as the message contract's prediction records."""
    reserved = {spec.id_column, spec.timestamp_column, spec.prediction_column, spec.score_column, spec.label_column}
    feats = list(spec.features) if spec.features is not None else [c for c in frame.columns if c not in reserved]
    missing = [c for c in [spec.id_column, spec.prediction_column, *feats] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns not in the file: {missing}; columns are {list(frame.columns)}")
    ids = frame[spec.id_column].astype(str).tolist()
    ts = _timestamps(frame, spec.timestamp_column)
    preds = [_native(v) for v in frame[spec.prediction_column].tolist()]
    scores = frame[spec.score_column].tolist() if spec.score_column and spec.score_column in frame.columns else None
    rows = frame[feats].astype(object).where(frame[feats].notna(), None).to_dict("records")
    out = []
    for i, (pid, feat) in enumerate(zip(ids, rows)):
        rec: dict[str, Any] = {"prediction_id": pid, "model": spec.model, "features": {k: _native(v) for k, v in feat.items()},
                               "prediction": preds[i]}
        if spec.model_version:
            rec["model_version"] = spec.model_version
        if ts[i] is not None:
            rec["timestamp"] = ts[i]
        if scores is not None:
            rec["score"] = _native(scores[i])
        out.append((pid.encode(), orjson.dumps(rec)))
    return out


def label_records(frame: pd.DataFrame, spec: ReplaySpec, label_column: str) -> list[tuple[str, bytes, Any]]:
    """``(prediction_id, key, label)`` per row with a non-null label."""
    if label_column not in frame.columns:
        raise ValueError(f"label column {label_column!r} not in the file; columns are {list(frame.columns)}")
    ids = frame[spec.id_column].astype(str).tolist()
    labels = frame[label_column].tolist()
    return [(pid, pid.encode(), _native(y)) for pid, y in zip(ids, labels) if _native(y) is not None]


def replay(
    sink: Sink, predictions: list[tuple[bytes, bytes]], predictions_topic: str,
    labels: Iterable[tuple[str, bytes, Any]] = (), labels_topic: str = "labels", model: str = "",
    label_delay: int = 0, label_delay_s: float = 0.0, rate: float | None = None, progress: bool = True,
) -> tuple[int, int]:
    """Send predictions in order and each label ``label_delay`` records (or ``label_delay_s``
    seconds) after its prediction; returns ``(predictions sent, labels sent)``."""
    by_id = {pid: (key, y) for pid, key, y in labels}
    due: deque[tuple[float, int, bytes, bytes]] = deque()
    sent_p = sent_l = 0
    t0 = time.monotonic()
    bar = tqdm(total=len(predictions), unit="rec", desc="replay", disable=not progress)

    def send_label(key: bytes, pid: str, y: Any, ts: str | None) -> None:
        nonlocal sent_l
        rec: dict[str, Any] = {"prediction_id": pid, "model": model, "label": y}
        if ts is not None:
            rec["timestamp"] = ts
        sink.send(labels_topic, key, orjson.dumps(rec))
        sent_l += 1

    last_ts: str | None = None
    for i, (key, value) in enumerate(predictions):
        if rate:
            ahead = (i / rate) - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        sink.send(predictions_topic, key, value)
        sent_p += 1
        pid = key.decode()
        if pid in by_id:
            last_ts = orjson.loads(value).get("timestamp") if label_delay or label_delay_s else None
            due.append((time.monotonic() + label_delay_s, i + label_delay, by_id[pid][0], orjson.dumps([pid, by_id[pid][1]])))
        while due and due[0][1] <= i and due[0][0] <= time.monotonic():
            _, _, k, payload = due.popleft()
            pid_, y = orjson.loads(payload)
            send_label(k, pid_, y, last_ts)
        if i and i % 1000 == 0:
            bar.update(1000)
    while due:
        when, _, k, payload = due.popleft()
        wait = when - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        pid_, y = orjson.loads(payload)
        send_label(k, pid_, y, last_ts)
    sink.flush()
    bar.n = len(predictions)
    bar.close()
    return sent_p, sent_l
