"""A simulated serving stack for `driftwarden demo`: a car-loan-like tabular task, a small torch
model trained at start-up, and a traffic generator that sends prediction and (late) label records
exactly per the DESIGN message contract, with drift ramping in after a given number of records.

Drift has two parts, both driven by one level `drift` in [0, 1]:

- covariate shift: income falls (about -30 % at drift 1), debt ratios and loan lengths rise, and
  the region and employment mixes move (more "west", more "self-employed");
- concept shift: for the self-employed segment P(repaid | x) changes (income's effect flips and the
  base rate drops), so the model's performance falls there while it holds for the other segments.

torch is imported lazily: building data and running the simulator's bookkeeping need only numpy.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import numpy as np
import orjson
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "CATEGORICAL",
    "FEATURES",
    "NUMERIC",
    "TARGET",
    "PromotedModel",
    "ServingModel",
    "ServingSimulator",
    "Sink",
    "build_reference",
    "make_dataset",
    "train_model",
]

TARGET = "repaid"
NUMERIC: tuple[str, ...] = ("income", "debt_ratio", "loan_length", "age")
CATEGORICAL: dict[str, tuple[str, ...]] = {
    "region": ("north", "south", "east", "west"),
    "employment": ("salaried", "self-employed", "retired"),
}
FEATURES: tuple[str, ...] = ("income", "debt_ratio", "loan_length", "region", "employment", "age")

_LOAN_LENGTHS = np.array([12, 24, 36, 48, 60, 72], dtype=np.int64)  # months
# Mixes before (index 0) and at full drift (index 1); rows in between interpolate linearly.
_REGION_P = np.array([[0.30, 0.30, 0.20, 0.20], [0.15, 0.20, 0.15, 0.50]])
_EMPLOYMENT_P = np.array([[0.65, 0.20, 0.15], [0.45, 0.45, 0.10]])
_LOAN_P = np.array([[0.10, 0.20, 0.30, 0.20, 0.12, 0.08], [0.05, 0.10, 0.20, 0.25, 0.20, 0.20]])
_REGION_INCOME = np.array([0.15, -0.10, 0.0, -0.20])  # log-income offsets
_REGION_LOGIT = np.array([0.2, -0.2, 0.0, -0.3])
_EMPLOYMENT_INCOME = np.array([0.0, 0.10, -0.30])
_EMPLOYMENT_LOGIT = np.array([0.4, -0.3, 0.0])
_SELF_EMPLOYED = 1
_LABEL_TICK_S = 0.05  # labels falling due closer together than this go out together


def _mix(u: np.ndarray, p: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """Category index per row, from uniforms `u` and the mix interpolated by each row's drift."""
    probs = (1.0 - drift)[:, None] * p[0] + drift[:, None] * p[1]
    cum = np.cumsum(probs, axis=1)
    return np.minimum((u[:, None] > cum[:, :-1]).sum(axis=1), p.shape[1] - 1)


def _generate(rng: np.random.Generator, drift: np.ndarray) -> pd.DataFrame:
    """Rows with a per-row drift level (the simulator ramps it; `make_dataset` holds it fixed)."""
    n = drift.shape[0]
    region = _mix(rng.random(n), _REGION_P, drift)
    employment = _mix(rng.random(n), _EMPLOYMENT_P, drift)
    loan_length = _LOAN_LENGTHS[_mix(rng.random(n), _LOAN_P, drift)]
    retired = employment == 2
    age = np.where(retired, rng.normal(67.0, 5.0, n), rng.normal(40.0, 11.0, n))
    age = np.clip(age, np.where(retired, 55.0, 18.0), np.where(retired, 90.0, 70.0)).round(1)
    log_income = (
        np.log(42_000.0)
        + _REGION_INCOME[region]
        + _EMPLOYMENT_INCOME[employment]
        + rng.normal(0.0, 0.35, n) * np.where(employment == _SELF_EMPLOYED, 1.4, 1.0)
        - 0.35 * drift
    )
    income = np.exp(log_income).round(0)
    debt_ratio = np.clip(rng.beta(2.0, 5.0, n) + 0.08 * drift, 0.0, 0.95).round(3)

    # The known rule: a nonlinear logit, then Bernoulli noise.
    rel_income = np.log(income / 42_000.0)
    z = (
        1.3
        + 2.0 * rel_income
        - 7.0 * (debt_ratio - 0.29)
        - 0.025 * (loan_length - 36)
        - 1.5 * ((debt_ratio > 0.4) & (loan_length >= 60))
        - 0.002 * (age - 45.0) ** 2
        + _EMPLOYMENT_LOGIT[employment]
        + _REGION_LOGIT[region]
    )
    # Concept drift, self-employed only: income's effect flips (2.0 -> -1.5) and the base drops.
    z = z - np.where(employment == _SELF_EMPLOYED, drift * (1.5 + 3.5 * rel_income), 0.0)
    repaid = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)

    return pd.DataFrame(
        {
            "income": income,
            "debt_ratio": debt_ratio,
            "loan_length": loan_length,
            "region": np.asarray(CATEGORICAL["region"], dtype=object)[region],
            "employment": np.asarray(CATEGORICAL["employment"], dtype=object)[employment],
            "age": age,
            TARGET: repaid,
        }
    )


def make_dataset(n: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """`n` rows of car-loan-like data: the features in `FEATURES` plus the 0/1 target `repaid`.

    Deterministic for a given (n, seed, drift). `drift` in [0, 1] moves the inputs and, for the
    self-employed segment, P(repaid | x) (see the module docstring).

    >>> make_dataset(3, seed=0).columns.tolist()
    ['income', 'debt_ratio', 'loan_length', 'region', 'employment', 'age', 'repaid']
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift}")
    return _generate(np.random.default_rng(seed), np.full(n, float(drift)))


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, restoring the previous setting afterwards."""
    import torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


@dataclass(slots=True)
class ServingModel:
    """The served classifier: a small MLP over standardised numerics and one-hot categoricals."""

    net: torch.nn.Module
    mean: np.ndarray  # per numeric feature, from the training frame
    std: np.ndarray
    numeric: tuple[str, ...] = NUMERIC
    categorical: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(CATEGORICAL))
    version: str = "1"
    threshold: float = 0.5

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """float32 matrix: standardised numerics, then one-hot categoricals (unseen -> all zeros)."""
        num = (frame[list(self.numeric)].to_numpy(dtype=np.float64) - self.mean) / self.std
        parts = [num.astype(np.float32)]
        for name, levels in self.categorical.items():
            values = frame[name].to_numpy(dtype=object)
            parts.append(np.stack([values == level for level in levels], axis=1).astype(np.float32))
        return np.concatenate(parts, axis=1)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class (repaid) probability per row, float64."""
        import torch

        x = torch.from_numpy(self.encode(frame))
        self.net.eval()
        with _one_thread(), torch.no_grad():
            return torch.sigmoid(self.net(x)).squeeze(1).double().numpy()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(frame) >= self.threshold).astype(np.int64)


class PromotedModel:
    """A version from the agent's model registry, served in place of the start-up model: what a
    real serving stack does when it watches the registry's promoted pointer."""

    threshold: float = 0.5

    def __init__(self, trained: Any, version: str) -> None:  # agent.retrain.tabular.TrainedModel
        self.trained = trained
        self.version = str(version)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with _one_thread():
            return np.asarray(self.trained.predict(frame[list(FEATURES)]), dtype=np.float64)


def train_model(
    frame: pd.DataFrame, seed: int = 0, epochs: int = 15, *, batch_size: int = 1024, lr: float = 1e-2
) -> ServingModel:
    """Train the serving MLP on `frame` (features + `repaid`); deterministic for a given seed.

    Minibatch Adam on CPU, one intra-op thread (a net this small only loses from more: on a busy
    2-core machine two threads made it ~10x slower): ~2 s for 20,000 rows and 15 epochs. The
    global torch RNG and thread count are restored afterwards (the seed is applied in `fork_rng`).
    """
    import torch

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if TARGET not in frame.columns:
        raise ValueError(f"training frame has no target column {TARGET!r}")
    numeric = frame[list(NUMERIC)].to_numpy(dtype=np.float64)
    mean, std = numeric.mean(axis=0), numeric.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    with _one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = len(NUMERIC) + sum(len(v) for v in CATEGORICAL.values())
        net = torch.nn.Sequential(
            torch.nn.Linear(width, 32), torch.nn.ReLU(),
            torch.nn.Linear(32, 16), torch.nn.ReLU(),
            torch.nn.Linear(16, 1),
        )
        model = ServingModel(net=net, mean=mean, std=std)
        x = torch.from_numpy(model.encode(frame))
        y = torch.from_numpy(frame[TARGET].to_numpy(dtype=np.float32)).unsqueeze(1)
        adam = torch.optim.Adam(net.parameters(), lr=lr)
        shuffle = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(x.shape[0], generator=shuffle).split(batch_size):
                adam.zero_grad(set_to_none=True)
                torch.nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx]).backward()
                adam.step()
        net.eval()
    return model


def build_reference(model: ServingModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The agent's reference set: features, `repaid`, `y_pred` (0/1) and `y_pred_proba`."""
    missing = [c for c in (*FEATURES, TARGET) if c not in frame.columns]
    if missing:
        raise ValueError(f"reference frame lacks columns {missing}")
    out = frame[[*FEATURES, TARGET]].reset_index(drop=True).copy()
    proba = model.predict_proba(out)
    out["y_pred"] = (proba >= model.threshold).astype(np.int64)
    out["y_pred_proba"] = proba
    return out


class Sink(Protocol):
    """Where records go (the lead's KafkaProducerSink, or a list in tests)."""

    def send(self, topic: str, key: bytes, value: bytes) -> Any: ...

    def flush(self) -> Any: ...


def _rfc3339(epoch_s: np.ndarray) -> list[str]:
    """Epoch seconds -> RFC 3339 UTC strings with millisecond precision and a Z, vectorised."""
    ms = np.round(epoch_s * 1000.0).astype("int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]


@dataclass(slots=True)
class _PendingLabels:
    """Labels of one batch, due in order (the delay is constant, so due times never decrease)."""

    due: np.ndarray  # monotonic-clock seconds, non-decreasing
    ids: list[str]
    labels: list[int]
    stamps: list[str]
    start: int = 0


class ServingSimulator:
    """Sends scored traffic and late labels to `sink`, with drift ramping in after `drift_after`.

    Drift for record i is clip((i - drift_after) / drift_ramp, 0, 1) (a step when drift_ramp is 0).
    Traffic goes out in batches of at most `batch_size` rows and at most half a second of traffic;
    the pace is held by waiting on `stop` between batches, never by spinning. A label is sent
    `label_delay_s` after its prediction's timestamp (labels due within `_LABEL_TICK_S` of each other
    go out together), for a random `label_share` of predictions.
    `run` returns when `stop` is set (pending labels are dropped) or after `n` predictions and
    their pending labels. Counters may be read from another thread while `run` runs.
    """

    def __init__(
        self,
        model: ServingModel | PromotedModel,
        sink: Sink,
        predictions_topic: str,
        labels_topic: str,
        model_name: str = "car-loan",
        rate: float = 1_000.0,
        label_delay_s: float = 5.0,
        label_share: float = 0.9,
        drift_after: int = 10_000,
        drift_ramp: int = 5_000,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        *,
        model_version: str | None = None,
        batch_size: int = 500,
        wall_clock: Callable[[], float] = time.time,
        id_prefix: str | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 events/s, got {rate}")
        if not label_delay_s >= 0:
            raise ValueError(f"label_delay_s must be >= 0, got {label_delay_s}")
        if not 0.0 <= label_share <= 1.0:
            raise ValueError(f"label_share must be in [0, 1], got {label_share}")
        if drift_after < 0:
            raise ValueError(f"drift_after must be >= 0, got {drift_after}")
        if drift_ramp < 0:
            raise ValueError(f"drift_ramp must be >= 0, got {drift_ramp}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._served: tuple[ServingModel | PromotedModel, str] = (
            model, model.version if model_version is None else model_version)
        self.sink = sink
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self.model_name = model_name
        self.rate = float(rate)
        self.label_delay_s = float(label_delay_s)
        self.label_share = float(label_share)
        self.drift_after = drift_after
        self.drift_ramp = drift_ramp
        self.seed = seed
        self.clock = clock
        self.wall_clock = wall_clock
        self.batch_size = batch_size
        self.id_prefix = uuid.uuid4().hex[:12] if id_prefix is None else id_prefix
        self.sent_predictions = 0
        self.sent_labels = 0
        self.current_drift = 0.0
        self._data_rng, self._label_rng = np.random.default_rng(seed).spawn(2)
        self._pending: deque[_PendingLabels] = deque()

    @property
    def pending_labels(self) -> int:
        return sum(len(p.ids) - p.start for p in self._pending)

    def swap(self, model: ServingModel | PromotedModel) -> None:
        """Serve `model` from the next batch on (called from another thread: a batch reads the
        model once, so none is scored half by one model and half by the other)."""
        self._served = (model, model.version)

    @property
    def model(self) -> ServingModel | PromotedModel:
        return self._served[0]

    @property
    def model_version(self) -> str:
        return self._served[1]

    def drift_at(self, index: np.ndarray) -> np.ndarray:
        """Drift level of the records with these 0-based sequence numbers."""
        if self.drift_ramp == 0:
            return (index >= self.drift_after).astype(np.float64)
        return np.clip((index - self.drift_after) / self.drift_ramp, 0.0, 1.0)

    def run(self, n: int | None = None, stop: threading.Event | None = None) -> None:
        """Send `n` predictions (forever when None) at `rate`, with their labels; see class doc."""
        stop = threading.Event() if stop is None else stop
        target = None if n is None else self.sent_predictions + n
        chunk = max(1, min(self.batch_size, int(self.rate * 0.5)))
        t0 = self.clock()
        wall0 = self.wall_clock() - t0  # monotonic -> epoch seconds offset
        first = self.sent_predictions
        try:
            while not stop.is_set():
                remaining = chunk if target is None else min(chunk, target - self.sent_predictions)
                if remaining <= 0:
                    break
                done = self.sent_predictions - first
                # This batch's events happen in [start, end); it goes out once `end` has passed.
                start, end = t0 + done / self.rate, t0 + (done + remaining) / self.rate
                if not self._wait_until(end, stop):
                    return
                event_t = start + np.arange(remaining) / self.rate
                self._send_batch(event_t, wall0)
                self._send_due_labels(self.clock())
            while self._pending and not stop.is_set():  # n reached: deliver what is still owed
                head = self._pending[-1]
                if not self._wait_until(float(head.due[-1]), stop):
                    return
        finally:
            self.sink.flush()

    def _wait_until(self, deadline: float, stop: threading.Event) -> bool:
        """Sleep until `deadline` on the clock, sending labels as they fall due; False if stopped."""
        while True:
            now = self.clock()
            self._send_due_labels(now)
            if now >= deadline:
                return True
            wake = deadline
            if self._pending:  # labels go out in small bunches, at most every _LABEL_TICK_S
                head = self._pending[0]
                wake = min(wake, max(float(head.due[head.start]), now + _LABEL_TICK_S))
            if stop.wait(max(wake - now, 0.0) + 1e-4):
                return False

    def _send_batch(self, event_t: np.ndarray, wall0: float) -> None:
        b = event_t.shape[0]
        seq = self.sent_predictions + np.arange(b)
        drift = self.drift_at(seq)
        frame = _generate(self._data_rng, drift)
        served, version = self._served
        proba = served.predict_proba(frame)
        pred = (proba >= served.threshold).astype(np.int64)
        ids = [f"{self.id_prefix}-{i}" for i in seq.tolist()]
        stamps = _rfc3339(event_t + wall0)
        columns = [frame[name].tolist() for name in FEATURES]
        send, topic = self.sink.send, self.predictions_topic
        model = self.model_name
        for i, (pid, ts, p, s, *values) in enumerate(
            zip(ids, stamps, pred.tolist(), np.round(proba, 6).tolist(), *columns)
        ):
            record = {
                "prediction_id": pid, "model": model, "model_version": version, "timestamp": ts,
                "features": dict(zip(FEATURES, values)), "prediction": p, "score": s,
            }
            send(topic, pid.encode(), orjson.dumps(record))
            self.sent_predictions += 1  # per record, so a failing send leaves the count right
        self.current_drift = float(drift[-1])

        chosen = np.flatnonzero(self._label_rng.random(b) < self.label_share)
        if chosen.size:
            due = event_t[chosen] + self.label_delay_s
            self._pending.append(
                _PendingLabels(
                    due=due,
                    ids=[ids[i] for i in chosen.tolist()],
                    labels=frame[TARGET].to_numpy()[chosen].tolist(),
                    stamps=_rfc3339(due + wall0),
                )
            )

    def _send_due_labels(self, now: float) -> None:
        send, topic, model = self.sink.send, self.labels_topic, self.model_name
        while self._pending:
            head = self._pending[0]
            stop_at = int(np.searchsorted(head.due, now, side="right"))
            for i in range(head.start, stop_at):
                pid = head.ids[i]
                record = {"prediction_id": pid, "model": model, "label": head.labels[i],
                          "timestamp": head.stamps[i]}
                send(topic, pid.encode(), orjson.dumps(record))
                self.sent_labels += 1
                head.start = i + 1
            if head.start < len(head.ids):
                return
            self._pending.popleft()
