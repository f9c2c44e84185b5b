"""Tabular models for retraining: the schema, preprocessing fitted on train rows only, the MLP.

A :class:`Preprocessor` turns a frame into two arrays: ``numeric`` (float32: each numeric column
standardised with the train rows' mean and standard deviation after imputing NaN with that mean,
then one 0/1 missing indicator per column that had NaN in train) and ``categorical`` (int64 codes:
0 is the unknown bucket, for missing values and for categories never seen in train; ``i + 1`` is
the i-th category of train). Infinite values are not imputed: they stay infinite, and the data
gate on finite values stops the job. Its fitted state is plain JSON.

:class:`TabularMLP` embeds each categorical column (dimension ``min(16, round(1.6 * k ** 0.56))``
for ``k`` codes), concatenates the numeric block, and runs ReLU layers into one head: one logit for
``binary``, ``k`` logits for ``multiclass``, one value for ``regression`` (on the standardised
target). The head's bias starts at the train prior (the logit of the positive share, the log class
shares, the target mean), so the loss at step 0 sits near chance.

:class:`TrainedModel` bundles both; ``save`` writes the state dict (``weights.pt``, read back with
``torch.load(..., weights_only=True)``, never unpickled) and the preprocessing and module spec as
JSON (``model.json``), each through a temporary file and ``os.replace``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Task", "TASKS", "TabularSchema", "NumericColumn", "CategoricalColumn", "Features", "Preprocessor",
           "ModuleSpec", "TabularMLP", "ModuleFactory", "Batch", "Split", "TrainedModel", "task_loss",
           "output_bias", "evaluate_loss", "predict_encoded", "embedding_dim"]

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
FORMAT = 1
_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class TabularSchema:
    """Which columns of the frames are what. ``served_column`` holds what the champion served for
    each holdout row: P(positive class) for binary, the predicted label for multiclass, the
    predicted value for regression."""

    task: Task
    target: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    id_column: str | None = None
    time_column: str | None = None
    weight_column: str | None = None
    served_column: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        features = self.numeric + self.categorical
        if not features:
            raise ValueError("numeric and categorical are both empty: no features")
        if len(set(features)) != len(features):
            raise ValueError(f"a feature is listed twice in numeric/categorical: {features!r}")
        others = [c for c in (self.target, self.id_column, self.time_column, self.weight_column,
                              self.served_column) if c is not None]
        if clash := sorted(set(others) & set(features)):
            raise ValueError(f"columns {clash!r} are features and also target/id/time/weight/served")

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, task: Task, target: str, features: Sequence[str],
                   **columns: str | None) -> TabularSchema:
        """Numeric dtypes (not bool) become numeric features, the rest categorical."""
        numeric = tuple(c for c in features if pd.api.types.is_numeric_dtype(frame[c])
                        and not pd.api.types.is_bool_dtype(frame[c]))
        categorical = tuple(c for c in features if c not in numeric)
        return cls(task=task, target=target, numeric=numeric, categorical=categorical, **columns)


@dataclass(frozen=True, slots=True)
class NumericColumn:
    name: str
    mean: float
    std: float
    indicator: bool   # a 0/1 missing indicator follows the standardised block
    constant: bool    # zero spread in train: standardised to all zeros, left out of the normalisation gate


@dataclass(frozen=True, slots=True)
class CategoricalColumn:
    name: str
    categories: tuple[str, ...]   # code i + 1; code 0 is the unknown bucket (missing or unseen)

    @property
    def cardinality(self) -> int:
        return len(self.categories) + 1


@dataclass(frozen=True, slots=True)
class Features:
    numeric: np.ndarray       # (n, n_numeric) float32
    categorical: np.ndarray   # (n, n_categorical) int64

    def __len__(self) -> int:
        return self.numeric.shape[0]


def _labels(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(v.item() if isinstance(v, np.generic) else v for v in values)


@dataclass(frozen=True, slots=True)
class Preprocessor:
    """Preprocessing fitted on train rows only (:meth:`fit`), applied to any frame (:meth:`transform`)."""

    task: Task
    target: str
    numeric: tuple[NumericColumn, ...]
    categorical: tuple[CategoricalColumn, ...]
    classes: tuple[Any, ...] = ()   # classification: sorted train labels; index = encoded label
    target_mean: float = 0.0        # regression: the target is standardised too
    target_std: float = 1.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, schema: TabularSchema) -> Preprocessor:
        if len(frame) == 0:
            raise ValueError("cannot fit preprocessing on an empty frame")
        numeric = []
        for name in schema.numeric:
            x = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            finite = x[np.isfinite(x)]
            mean = float(finite.mean()) if len(finite) else 0.0
            filled = np.where(np.isnan(x), mean, x)
            spread = float(np.where(np.isfinite(filled), filled, mean).std())
            constant = not spread > 0
            numeric.append(NumericColumn(name, mean, 1.0 if constant else spread,
                                         bool(np.isnan(x).any()), constant))
        categorical = []
        for name in schema.categorical:
            col = frame[name]
            cats = sorted(set(col[col.notna()].astype(str)))
            categorical.append(CategoricalColumn(name, tuple(cats)))
        y = frame[schema.target]
        if y.isna().any():
            raise ValueError(f"target {schema.target!r} has {int(y.isna().sum())} missing labels in train")
        if schema.task == "regression":
            t = y.to_numpy(dtype=np.float64)
            std = float(t.std())
            return cls(schema.task, schema.target, tuple(numeric), tuple(categorical),
                       target_mean=float(t.mean()), target_std=std if std > 0 else 1.0)
        classes = _labels(np.unique(y.to_numpy()))
        if schema.task == "binary" and len(classes) != 2:
            raise ValueError(f"binary target {schema.target!r} has {len(classes)} classes in train: {classes!r}")
        if schema.task == "multiclass" and len(classes) < 2:
            raise ValueError(f"multiclass target {schema.target!r} has one class in train: {classes!r}")
        return cls(schema.task, schema.target, tuple(numeric), tuple(categorical), classes=classes)

    @property
    def feature_names(self) -> list[str]:
        return ([c.name for c in self.numeric] + [f"{c.name}__missing" for c in self.numeric if c.indicator]
                + [c.name for c in self.categorical])

    @property
    def n_numeric(self) -> int:
        return len(self.numeric) + sum(c.indicator for c in self.numeric)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(c.cardinality for c in self.categorical)

    @property
    def standardised(self) -> np.ndarray:
        """Indices of the standardised (non-constant) columns of ``numeric``."""
        return np.array([i for i, c in enumerate(self.numeric) if not c.constant], dtype=np.intp)

    @property
    def out_dim(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    def transform(self, frame: pd.DataFrame) -> Features:
        n = len(frame)
        blocks, indicators = [], []
        for c in self.numeric:
            x = frame[c.name].to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(x)
            blocks.append((np.where(missing, c.mean, x) - c.mean) / c.std)
            if c.indicator:
                indicators.append(missing.astype(np.float64))
        numeric = np.stack(blocks + indicators, axis=1) if blocks else np.zeros((n, 0))
        codes = []
        for c in self.categorical:
            col = frame[c.name]
            values = col.astype(str).where(col.notna(), None)
            codes.append(pd.Categorical(values, categories=list(c.categories)).codes.astype(np.int64) + 1)
        categorical = np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.int64)
        return Features(numeric.astype(np.float32), categorical)

    def encode_target(self, values: Any) -> np.ndarray:
        """Labels as the model sees them: 0/1 float32 (binary), class index int64 (multiclass),
        standardised float32 (regression). An unseen class or a missing label raises ValueError."""
        s = pd.Series(np.asarray(values))
        if self.task == "regression":
            y = s.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(y).any():
                raise ValueError(f"target {self.target!r} has {int(np.isnan(y).sum())} missing values")
            return ((y - self.target_mean) / self.target_std).astype(np.float32)
        codes = pd.Categorical(s, categories=list(self.classes)).codes.astype(np.int64)
        if (codes < 0).any():
            unseen = sorted(set(_labels(s[codes < 0].unique())), key=repr)
            raise ValueError(f"target {self.target!r} has labels not seen in train: {unseen[:10]!r}")
        return codes.astype(np.float32) if self.task == "binary" else codes

    def encode_served(self, values: Any) -> np.ndarray:
        """The champion's served column in the encoded space: P(positive) (binary, as served), the
        class index (multiclass; -1 for a label not in ``classes``: counted wrong), the standardised
        value (regression)."""
        s = pd.Series(np.asarray(values))
        if self.task == "binary":
            return s.to_numpy(dtype=np.float64)
        if self.task == "multiclass":
            return pd.Categorical(s, categories=list(self.classes)).codes.astype(np.int64)
        return (s.to_numpy(dtype=np.float64) - self.target_mean) / self.target_std

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "target": self.target, "numeric": [asdict(c) for c in self.numeric],
                "categorical": [{"name": c.name, "categories": list(c.categories)} for c in self.categorical],
                "classes": list(self.classes), "target_mean": self.target_mean, "target_std": self.target_std}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        return cls(d["task"], d["target"], tuple(NumericColumn(**c) for c in d["numeric"]),
                   tuple(CategoricalColumn(c["name"], tuple(c["categories"])) for c in d["categorical"]),
                   tuple(d["classes"]), float(d["target_mean"]), float(d["target_std"]))


def embedding_dim(cardinality: int) -> int:
    return max(1, min(16, round(1.6 * cardinality ** 0.56)))


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """What a module factory is given: input widths, output width, and the head's starting bias."""

    n_numeric: int
    cardinalities: tuple[int, ...]
    out_dim: int
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    output_bias: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cardinalities", tuple(int(c) for c in self.cardinalities))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.n_numeric < 0 or (self.n_numeric == 0 and not self.cardinalities):
            raise ValueError(f"n_numeric must be >= 0 with at least one input, got {self.n_numeric!r}")
        if any(c < 1 for c in self.cardinalities):
            raise ValueError(f"cardinalities must be >= 1, got {self.cardinalities!r}")
        if self.out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {self.out_dim!r}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.output_bias is not None:
            object.__setattr__(self, "output_bias", tuple(float(b) for b in self.output_bias))
            if len(self.output_bias) != self.out_dim:
                raise ValueError(f"output_bias has {len(self.output_bias)} values for out_dim {self.out_dim}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cardinalities"], d["hidden"] = list(self.cardinalities), list(self.hidden)
        d["output_bias"] = None if self.output_bias is None else list(self.output_bias)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModuleSpec:
        bias = d.get("output_bias")
        return cls(int(d["n_numeric"]), tuple(d["cardinalities"]), int(d["out_dim"]), tuple(d["hidden"]),
                   float(d["dropout"]), None if bias is None else tuple(bias))


class TabularMLP(nn.Module):
    """Embeddings + numeric block -> ReLU layers (dropout after each) -> head; ``forward(numeric,
    categorical)`` returns ``(n, out_dim)`` logits (or standardised values)."""

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = nn.ModuleList(nn.Embedding(k, embedding_dim(k)) for k in spec.cardinalities)
        width = spec.n_numeric + sum(e.embedding_dim for e in self.embeddings)
        layers = []
        for h in spec.hidden:
            layers.append(nn.Linear(width, h))
            width = h
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(width, spec.out_dim)
        self.dropout = nn.Dropout(spec.dropout)
        if spec.output_bias is not None:
            with torch.no_grad():
                self.head.bias.copy_(torch.tensor(spec.output_bias))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        h = torch.cat(parts, dim=1) if len(parts) > 1 else numeric
        for layer in self.layers:
            h = self.dropout(torch.relu(layer(h)))
        return self.head(h)


ModuleFactory = Callable[[ModuleSpec], nn.Module]


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows as tensors on one device; what a training step (and an ``on_batch`` hook) sees."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor

    def loss(self, module: nn.Module, task: Task) -> torch.Tensor:
        return task_loss(task, module(self.numeric, self.categorical), self.target, self.weight)


@dataclass(frozen=True, slots=True)
class Split:
    """One split (train, validation or holdout) after preprocessing: features, encoded target, weights."""

    features: Features
    target: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, rows: np.ndarray | slice | None = None, device: torch.device | str = "cpu",
              unweighted: bool = False) -> Batch:
        rows = slice(None) if rows is None else rows
        w = np.ones(len(self.weight[rows]), dtype=np.float32) if unweighted else self.weight[rows]
        return Batch(torch.from_numpy(np.ascontiguousarray(self.features.numeric[rows])).to(device),
                     torch.from_numpy(np.ascontiguousarray(self.features.categorical[rows])).to(device),
                     torch.from_numpy(np.ascontiguousarray(self.target[rows])).to(device),
                     torch.from_numpy(np.ascontiguousarray(w)).to(device))


@torch.no_grad()
def evaluate_loss(module: nn.Module, task: Task, split: Split, device: torch.device | str = "cpu") -> float:
    """The weighted loss over a whole split, in eval mode, float32, in chunks."""
    was_training = module.training
    module.eval()
    total, mass = 0.0, 0.0
    for i in range(0, len(split), _CHUNK):
        b = split.batch(slice(i, i + _CHUNK), device)
        m = float(b.weight.sum())
        total += float(b.loss(module, task)) * m
        mass += m
    module.train(was_training)
    return total / mass if mass > 0 else float("nan")


def task_loss(task: Task, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean loss (sum w * l / sum w): BCE on the logit, cross-entropy, or squared error on
    the standardised target. Computed in float32 whatever the autocast dtype of ``out``."""
    if out.dtype in (torch.float16, torch.bfloat16):
        out = out.float()
    if task == "binary":
        per_row = F.binary_cross_entropy_with_logits(out[:, 0], target, reduction="none")
    elif task == "multiclass":
        per_row = F.cross_entropy(out, target, reduction="none")
    else:
        per_row = (out[:, 0] - target) ** 2
    return (per_row * weight).sum() / weight.sum()


def output_bias(task: Task, y: np.ndarray, w: np.ndarray, out_dim: int) -> tuple[float, ...]:
    """The head bias whose constant prediction is the weighted train prior."""
    w = w / w.sum()
    if task == "binary":
        p = float(np.clip((w * y).sum(), 1e-6, 1 - 1e-6))
        return (float(np.log(p / (1 - p))),)
    if task == "multiclass":
        share = np.bincount(y, weights=w, minlength=out_dim)
        return tuple(float(v) for v in np.log(np.clip(share, 1e-6, None)))
    return (float((w * y).sum()),)


@torch.no_grad()
def predict_encoded(module: nn.Module, task: Task, features: Features,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """Encoded-space predictions: P(positive) ``(n,)``, class probabilities ``(n, k)``, or the
    standardised value ``(n,)``; in eval mode, float32, in chunks."""
    was_training = module.training
    module.eval()
    outs = []
    for i in range(0, max(len(features), 1), _CHUNK):
        num = torch.from_numpy(features.numeric[i:i + _CHUNK]).to(device)
        cat = torch.from_numpy(features.categorical[i:i + _CHUNK]).to(device)
        out = module(num, cat).float()
        out = torch.sigmoid(out[:, 0]) if task == "binary" else (
            torch.softmax(out, dim=1) if task == "multiclass" else out[:, 0])
        outs.append(out.cpu().double().numpy())
    module.train(was_training)
    return np.concatenate(outs) if outs else np.zeros(0)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


@dataclass(slots=True)
class TrainedModel:
    """A fitted preprocessor and its module (on the CPU, eval mode)."""

    preprocessor: Preprocessor
    spec: ModuleSpec
    module: nn.Module
    extra: dict[str, Any] = field(default_factory=dict)   # JSON saved beside (e.g. the seed)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive class) ``(n,)`` for binary (the class ``preprocessor.classes[1]``), class
        probabilities ``(n, k)`` in ``preprocessor.classes`` order, or values in target units."""
        pre = self.preprocessor
        out = predict_encoded(self.module, pre.task, pre.transform(frame))
        return out * pre.target_std + pre.target_mean if pre.task == "regression" else out

    def predict_label(self, frame: pd.DataFrame) -> np.ndarray:
        pre = self.preprocessor
        if pre.task == "regression":
            raise ValueError("predict_label is for classification; use predict")
        p = self.predict(frame)
        idx = (p >= 0.5).astype(int) if pre.task == "binary" else p.argmax(axis=1)
        return np.asarray(pre.classes, dtype=object)[idx]

    def save(self, directory: str | Path) -> None:
        """``weights.pt`` (a state dict of tensors) and ``model.json`` (format, spec, preprocessing)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        _atomic_write(d / "weights.pt", lambda p: torch.save(state, p))
        meta = {"format": FORMAT, "spec": self.spec.to_dict(), "preprocessing": self.preprocessor.to_dict(),
                "extra": self.extra}
        _atomic_write(d / "model.json", lambda p: p.write_text(json.dumps(meta, indent=1, allow_nan=False)))

    @classmethod
    def load(cls, directory: str | Path, module_factory: ModuleFactory | None = None) -> TrainedModel:
        """Read back what :meth:`save` wrote; a model built by a custom factory needs that factory."""
        d = Path(directory)
        meta = json.loads((d / "model.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{d / 'model.json'}: unknown format {meta.get('format')!r}")
        spec = ModuleSpec.from_dict(meta["spec"])
        module = (module_factory or TabularMLP)(spec)
        module.load_state_dict(torch.load(d / "weights.pt", map_location="cpu", weights_only=True))
        module.eval()
        return cls(Preprocessor.from_dict(meta["preprocessing"]), spec, module, meta.get("extra", {}))
