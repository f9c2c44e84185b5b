"""Agent configuration: YAML turned once, at start-up, into frozen, validated models.

Nothing else in the agent reads YAML. A validation error becomes one line per problem, naming
the key path (``models.car-loan.window.size: ...``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["ConfigError", "Config", "build_config", "KafkaConfig", "HttpConfig", "ModelConfig", "WindowConfig", "load_config", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


class ConfigError(ValueError):
    """The configuration is invalid; ``str()`` has one line per problem."""


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` or a plain number of seconds.

    >>> parse_duration("1h"), parse_duration(30), parse_duration("250ms")
    (3600.0, 30.0, 0.25)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"duration must be positive, got {value!r}")
        return float(value)
    m = _DURATION.match(str(value))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"not a positive duration like '90s', '15m', '1h', '7d': {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_PASSTHROUGH = re.compile(r"^(security_protocol|sasl_\w+|ssl_\w+)$")


class KafkaConfig(_Frozen):
    model_config = ConfigDict(extra="allow", frozen=True)

    bootstrap_servers: str = "localhost:9092"
    # kafka-python decodes every fetched record in Python: with wide records at high rates pick
    # "confluent" (librdkafka; pip install 'driftwarden[confluent]'), several times its fetch rate.
    client: Literal["kafka-python", "confluent"] = "kafka-python"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    group_id: str = "driftwarden"
    max_poll_records: int = Field(5000, ge=1, le=1_000_000)
    max_record_bytes: int = Field(1 << 20, ge=64)

    @model_validator(mode="after")
    def _only_security_passthrough(self) -> KafkaConfig:
        bad = [k for k in (self.model_extra or {}) if not _PASSTHROUGH.match(k)]
        if bad:
            raise ValueError(f"unknown kafka keys {bad}; only security_protocol, sasl_* and ssl_* are passed through")
        return self

    @property
    def client_options(self) -> dict[str, Any]:
        """security_protocol / sasl_* / ssl_* settings, passed to the Kafka client unchanged."""
        return dict(self.model_extra or {})

    @property
    def embedded(self) -> bool:
        return self.bootstrap_servers == "embedded"


class HttpConfig(_Frozen):
    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)
    token_env: str = "DRIFTWARDEN_TOKEN"
    max_body_bytes: int = Field(1 << 20, ge=1024)


class WindowConfig(_Frozen):
    size: int | None = Field(None, ge=10)
    duration: float | None = None
    allowed_lateness: float = 0.0
    label_lateness: float = 7 * 86400.0
    label_retention: int = Field(24, ge=1, le=10_000, description="at most this many closed windows wait for labels")
    max_rows: int = Field(1_000_000, ge=10, description="rows of one window kept for label joins")
    keep_features: bool = Field(True, description="keep each joined row's feature values (memory: rows x features) "
                                                  "for the root-cause analysis and the traffic store")

    @field_validator("duration", "allowed_lateness", "label_lateness", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if v is None or (v == 0 and not isinstance(v, str)):
            return v
        return parse_duration(v)

    @model_validator(mode="after")
    def _one_kind(self) -> WindowConfig:
        if (self.size is None) == (self.duration is None):
            raise ValueError("set exactly one of 'size' (records) or 'duration' (event time)")
        return self


class DriftConfig(_Frozen):
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    effect_floor: float = Field(0.1, ge=0)
    n_bins: int = Field(20, ge=2, le=1000)
    max_categories: int = Field(200, ge=1)
    methods: dict[str, str] = Field(default_factory=dict)


class ConceptConfig(_Frozen):
    detectors: list[str] = Field(default_factory=lambda: ["adwin", "ddm", "page_hinkley"])  # eddm, kswin: opt in
    hold: int = Field(5000, ge=1, description="outcomes a detection stays reported")


class PerformanceConfig(_Frozen):
    min_coverage: float = Field(0.8, gt=0, le=1, description="label coverage at which a window settles")
    min_support: int = Field(50, ge=1, description="rows a segment needs to be reported")
    segment_pairs: bool = True


class IncidentConfig(_Frozen):
    """When the agent opens an incident on its own (see README "Incidents"). One incident per
    model and kind; it resolves itself after ``resolve_after`` judged windows without the condition,
    and a resolved kind stays quiet for ``cooldown_windows`` windows."""

    enabled: bool = True
    drift_share: float = Field(0.3, gt=0, le=1, description="dataset drift share that opens data_drift")
    drift_share_critical: float = Field(0.6, gt=0, le=1)
    metric: str | None = Field(None, description="performance metric watched (default: roc_auc with a score, "
                                                 "else accuracy; mae for regression)")
    performance_margin: float = Field(0.0, ge=0, description="the window's interval must lie this far below "
                                                             "the reference level")
    performance_critical_margin: float = Field(0.1, ge=0)
    estimate_margin: float = Field(0.05, ge=0, description="label-free estimate drop below the reference estimate")
    skew_rate: float = Field(0.01, ge=0, le=1, description="null / out-of-range / unseen rate of a feature that, "
                                                          "when also skew_factor x the reference's, opens data_quality")
    skew_factor: float = Field(5.0, ge=1)
    traffic_drop: float = Field(0.5, gt=0, lt=1, description="prediction rate below this share of the recent "
                                                            "median opens traffic_drop (event-time windows of size)")
    recent_windows: int = Field(5, ge=2, description="windows the recent traffic rate is the median of")
    confirm_windows: int = Field(2, ge=1, description="consecutive judged windows a cause must show in before "
                                                     "it opens an incident (per-window tests err now and then)")
    resolve_after: int = Field(3, ge=1)
    cooldown_windows: int = Field(5, ge=0)


class KubernetesLauncherConfig(_Frozen):
    """The ``kubernetes`` launcher's ``batch/v1`` Job (fields of
    :class:`agent.retrain.kubernetes_launcher.KubernetesOptions`)."""

    image: str = Field("driftwarden/retrain:0.1.0-cuda", min_length=1, description="the retraining image")
    namespace: str | None = Field(None, description="default: the agent pod's own namespace (else 'default')")
    gpus: int = Field(1, ge=0, description="nvidia.com/gpu in the container's limits (0: a CPU job)")
    cpu: str | None = "2"
    memory: str | None = "8Gi"
    backoff_limit: int = Field(0, ge=0)
    active_deadline_s: int | None = Field(None, ge=1, description="default: the job's timeout_s")
    ttl_after_finished_s: int = Field(86_400, ge=0)
    volume_claim: str | None = Field(None, description="PVC holding the agent's state_dir, mounted in the Job")
    mount_path: str = "/var/lib/driftwarden"
    state_dir: str | None = Field(None, description="the state_dir as the agent's pod sees it (default: as configured)")
    service_account: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    node_selector: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    name_prefix: str = "dw-retrain"
    api_server: str | None = Field(None, description="the API server's URL (e.g. `kubectl proxy`'s); default: the "
                                                     "in-cluster service account, else ~/.kube/config")

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError(f"not a DNS-1123 label: {v!r}")
        return v


class RetrainConfig(_Frozen):
    """Retraining of one model when an incident's analysis asks for it (README "Retraining")."""

    enabled: bool = Field(False, description="launch a job when an analysis' actions include retrain")
    launcher: Literal["local", "command", "kubernetes"] = "local"
    kubernetes: KubernetesLauncherConfig | None = Field(None, description="the kubernetes launcher's Job "
                                                                          "(launcher: kubernetes)")
    command: list[str] = Field(default_factory=list, description="the command launcher's argv ({snapshot}, "
                                                                 "{manifest}, {output} are filled in)")
    cooldown_s: float = Field(3600.0, ge=0, description="seconds after a job ends before the next may start")
    timeout_s: float = Field(3600.0, gt=0, description="a job running longer is killed and failed")
    min_rows: int = Field(1000, ge=50, description="labelled rows since the incident's first window a dataset "
                                                     "needs (the job waits for them)")
    holdout_share: float = Field(0.2, gt=0, lt=1)
    min_support: int = Field(50, ge=1, description="rows each segment the analysis named gets in train")
    epochs: int | None = Field(None, ge=1, description="the local trainer's epoch budget (default: its own)")
    traffic_max_age_s: float | None = Field(7 * 86400.0, gt=0, description="labelled traffic kept, by event age")
    traffic_max_bytes: int | None = Field(2 * 1024**3, ge=1, description="labelled traffic kept, by bytes on disk")

    @model_validator(mode="after")
    def _launcher_settings(self) -> RetrainConfig:
        if self.launcher == "command" and not self.command:
            raise ValueError("the command launcher needs a command (retrain.command: [argv, ...])")
        if self.launcher == "kubernetes" and self.kubernetes is None:
            object.__setattr__(self, "kubernetes", KubernetesLauncherConfig())
        if self.launcher != "kubernetes" and self.kubernetes is not None:
            raise ValueError(f"retrain.kubernetes is set but retrain.launcher is {self.launcher!r}")
        return self


class ModelConfig(_Frozen):
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    reference: Path
    target: str
    prediction: str | None = None
    score: str | None = None
    features: list[str] | None = None
    window: WindowConfig = Field(default_factory=lambda: WindowConfig(size=5000))
    segments: list[str] = Field(default_factory=list)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    concept: ConceptConfig = Field(default_factory=ConceptConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)


class JoinConfig(_Frozen):
    ttl: float = 7 * 86400.0
    max_pending_labels: int = Field(1_000_000, ge=1)

    @field_validator("ttl", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class CheckpointConfig(_Frozen):
    interval_s: float = Field(10.0, gt=0)


class RCAConfig(_Frozen):
    """The root-cause analysis of incidents (README "Root-cause analysis")."""

    enabled: bool = True
    windows: int = Field(5, ge=1, description="retained windows analysed for an incident without a window range "
                                             "(Alertmanager's), and the context before a rule incident's first")
    max_rows: int = Field(1_000_000, ge=100, description="newest rows of the affected windows analysed")
    min_rows: int = Field(200, ge=20, description="fewer rows than this: the analysis is marked failed")
    n_boot: int = Field(200, ge=0, description="bootstrap replicates of the evaluate step")
    min_confidence: float = Field(0.5, ge=0, le=1, description="a cause below this confidence is not named")
    queue: int = Field(16, ge=1, description="analyses waiting for the worker; beyond it one is marked failed")


class Config(_Frozen):
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    state_dir: Path = Path("./state")
    models: dict[str, ModelConfig]
    join: JoinConfig = Field(default_factory=JoinConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    rca: RCAConfig = Field(default_factory=RCAConfig)

    @field_validator("models")
    @classmethod
    def _some_models(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        if not v:
            raise ValueError("configure at least one model")
        return v


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {msg}")
    return "\n".join(lines)


def build_config(data: dict[str, Any], base_dir: Path | None = None) -> Config:
    """Validate a config mapping; relative reference paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError("(root): the configuration must be a mapping")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e)) from None
    if base_dir is not None:
        models = {
            name: m.model_copy(update={"reference": m.reference if m.reference.is_absolute() else base_dir / m.reference})
            for name, m in cfg.models.items()
        }
        cfg = cfg.model_copy(update={"models": models})
    return cfg


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
    return build_config(data, p.parent)
