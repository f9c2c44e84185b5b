"""What a dataset snapshot records (``manifest.json``: row counts, weights, segment coverage, file
digests, versions) and the snapshot read back; see :mod:`agent.retrain.dataset`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

from agent.retrain.dataset_spec import WEIGHT, DatasetError, DatasetSpec

if TYPE_CHECKING:
    from agent.retrain.tabular import TabularSchema

__all__ = ["FORMAT", "RowCounts", "WeightSummary", "SegmentCoverage", "FileDigest", "DatasetManifest",
           "DatasetSnapshot"]

FORMAT = 1


@dataclass(frozen=True, slots=True)
class RowCounts:
    reference_input: int
    recent_input: int
    unlabelled_reference: int   # dropped: no label
    unlabelled_recent: int
    excluded_reference: int     # dropped from train: label-noise suspects
    excluded_recent: int
    train_reference: int        # reference rows in train (0 on fallback), top-ups not included
    train_recent: int
    train_added: int            # reference rows added to cover segments
    holdout: int

    @property
    def train(self) -> int:
        return self.train_reference + self.train_recent + self.train_added


@dataclass(frozen=True, slots=True)
class WeightSummary:
    """The reference rows' density-ratio weights (mean 1, after clipping)."""

    n: int
    min: float
    median: float
    max: float
    clipped: int
    clip: float
    ess: float
    ess_share: float
    domain_auc: float


@dataclass(frozen=True, slots=True)
class SegmentCoverage:
    segment: str
    input_rows: int   # matching rows in reference + recent (labelled)
    before: int       # in train before stratification
    after: int        # in train after it
    added: int        # reference rows added for this segment
    holdout: int
    weight: float     # sum of __weight__ over its train rows
    covered: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FileDigest:
    name: str
    sha256: str
    bytes: int
    rows: int


@dataclass(frozen=True, slots=True)
class DatasetManifest:
    """What ``manifest.json`` holds; :meth:`schema` gives the trainer's :class:`TabularSchema`."""

    spec: DatasetSpec
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    rows: RowCounts
    weights: WeightSummary | None
    fallback: bool
    fallback_reason: str | None
    segments: tuple[SegmentCoverage, ...]
    excluded_count: int              # train rows removed as label-noise suspects
    excluded_ids: tuple[str, ...]    # their ids, in the RCA's order, at most spec.max_listed_ids
    excluded_ids_truncated: bool
    excluded_in_holdout: int         # suspects left in the holdout
    excluded_not_found: int          # suspect ids matching no row
    source_windows: tuple[int, ...]
    holdout_windows: tuple[int, ...]
    holdout_span: tuple[str, str]
    files: tuple[FileDigest, ...]
    versions: Mapping[str, str | None]
    format: int = FORMAT

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def uncovered(self) -> tuple[str, ...]:
        return tuple(s.segment for s in self.segments if not s.covered)

    def file(self, name: str) -> FileDigest:
        return next(f for f in self.files if f.name == name)

    def schema(self) -> TabularSchema:
        from agent.retrain.tabular import TabularSchema

        s = self.spec
        served = s.score_column if s.task == "binary" else s.prediction_column
        return TabularSchema(task=s.task, target=s.target, numeric=self.numeric, categorical=self.categorical,
                             id_column=s.id_column, time_column=s.time_column, weight_column=WEIGHT,
                             served_column=served)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["spec"] = self.spec.to_dict()
        d["rows"] = asdict(self.rows)
        d["weights"] = None if self.weights is None else asdict(self.weights)
        d["segments"] = [asdict(s) for s in self.segments]
        d["files"] = [asdict(f) for f in self.files]
        d["versions"] = dict(self.versions)
        d["seed"] = self.spec.seed   # also in spec; here for a reader's eye
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetManifest:
        if d.get("format") != FORMAT:
            raise DatasetError(f"unknown dataset manifest format {d.get('format')!r}")
        return cls(DatasetSpec.from_dict(d["spec"]), tuple(d["numeric"]), tuple(d["categorical"]),
                   RowCounts(**d["rows"]), None if d["weights"] is None else WeightSummary(**d["weights"]),
                   bool(d["fallback"]), d["fallback_reason"], tuple(SegmentCoverage(**s) for s in d["segments"]),
                   int(d["excluded_count"]), tuple(d["excluded_ids"]), bool(d["excluded_ids_truncated"]),
                   int(d["excluded_in_holdout"]), int(d["excluded_not_found"]), tuple(d["source_windows"]),
                   tuple(d["holdout_windows"]), tuple(d["holdout_span"]),  # type: ignore[arg-type]
                   tuple(FileDigest(**f) for f in d["files"]), dict(d["versions"]), int(d["format"]))


@dataclass(frozen=True, slots=True)
class DatasetSnapshot:
    train: pd.DataFrame
    holdout: pd.DataFrame
    manifest: DatasetManifest
