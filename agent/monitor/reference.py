"""A model's reference data: loaded once at start-up and fitted into everything that compares
live traffic with it (schema, per-feature drift, prediction drift, segments)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent.config import ModelConfig
from detectors.cbpe import CBPE
from detectors.drift import DatasetDrift, FeatureDrift
from detectors.segments import SegmentSpec
from detectors.schema import Schema
from detectors.verdict import VerdictPolicy

__all__ = ["ModelReference", "read_table"]


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV, Parquet or JSON-lines file into a frame (clear error on anything else)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix == ".csv":
        return pd.read_csv(p)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return pd.read_json(p, lines=suffix != ".json")
    raise ValueError(f"{p}: unsupported format {suffix!r} (use .csv, .parquet/.pq or .jsonl)")


@dataclass(slots=True)
class ModelReference:
    """Everything the monitor derives from one model's reference set."""

    name: str
    config: ModelConfig
    frame: pd.DataFrame
    schema: Schema
    drift: DatasetDrift
    prediction_drift: FeatureDrift
    segments: SegmentSpec
    classes: np.ndarray | None  # sorted class values of a classifier's target
    cbpe: CBPE | None = None  # label-free estimator (binary classifiers with a score column)
    expected_errors: np.ndarray | None = None  # CBPE's per-row error probability on the reference

    @property
    def numeric(self) -> list[str]:
        return [c.name for c in self.schema.columns if c.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.schema.columns if c.kind == "categorical"]

    @classmethod
    def load(cls, name: str, config: ModelConfig) -> ModelReference:
        try:
            frame = read_table(config.reference)
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f"models.{name}.reference: {e}") from None
        return cls.from_frame(name, config, frame)

    @classmethod
    def from_frame(cls, name: str, config: ModelConfig, frame: pd.DataFrame) -> ModelReference:
        where = f"models.{name}.reference ({config.reference})"
        if config.target not in frame.columns:
            raise ValueError(f"{where}: target column {config.target!r} not found; columns: {list(frame.columns)}")
        reserved = {config.target, config.prediction, config.score} - {None}
        if config.features is not None:
            missing = [c for c in config.features if c not in frame.columns]
            if missing:
                raise ValueError(f"{where}: features not found: {missing}")
            features = list(config.features)
        else:
            features = [c for c in frame.columns if c not in reserved and c not in ("id", "timestamp", "prediction_id")]
        bad_seg = [c for c in config.segments if c not in frame.columns]
        if bad_seg:
            raise ValueError(f"models.{name}.segments: columns not in the reference: {bad_seg}")
        d = config.drift
        schema = Schema.infer(frame, features, max_categories=d.max_categories)
        policy = VerdictPolicy(alpha=d.alpha, correction=d.correction, effect_floor=d.effect_floor)
        drift = DatasetDrift(policy=policy, methods=d.methods, n_bins=d.n_bins, max_categories=d.max_categories)
        drift.fit(frame[features], {c.name: c for c in schema.columns})
        pred_col = config.score or config.prediction
        if pred_col is not None and pred_col not in frame.columns:
            raise ValueError(f"{where}: prediction/score column {pred_col!r} not found")
        pred_values = frame[pred_col] if pred_col else frame[config.target]
        kind = "numeric" if config.task == "regression" or config.score else "categorical"
        prediction_drift = FeatureDrift("__prediction__", kind, None, d.n_bins, d.max_categories).fit(pred_values.to_numpy())
        classes = None
        if config.task != "regression":
            classes = np.sort(pd.unique(frame[config.target].dropna()))
        segments = SegmentSpec(tuple(config.segments)).fit(frame)
        cbpe = expected = None
        if config.task == "binary_classification" and config.score and classes is not None and len(classes) == 2:
            ok = frame[[config.score, config.target]].dropna()
            positive = (ok[config.target].to_numpy() == classes[-1]).astype(int)
            cbpe = CBPE("binary").fit(ok[config.score].to_numpy(dtype=float), positive)
            expected = cbpe.expected_errors(ok[config.score].to_numpy(dtype=float))
        return cls(name, config, frame, schema, drift, prediction_drift, segments, classes, cbpe,
                   expected if cbpe is not None else None)
