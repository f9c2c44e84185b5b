"""The trainer: frames in, a model and a report out, with the training-debugging checklist as gates.

``train(train, holdout, schema, config)`` runs, in order and stopping at the first failure:

1. data (``data.preprocess`` fails first when a frame lacks a column or has a label unseen in train): ``data.shapes``, ``data.dtypes``, ``data.finite`` (after preprocessing), ``data.normalised``
   (the standardised train columns have mean ~0, std ~1), ``data.label_alignment`` (a quick
   gradient-boosting fit on the true train labels beats the same fit on permuted labels on
   validation, in log-loss / MSE),
   ``data.leakage`` (no id and no identical feature+label row in both the fit rows and the holdout);
2. initialisation: ``init.symmetry`` (no weight matrix with identical rows), ``init.loss`` (train
   loss at step 0 near the loss of the best constant: ln k when balanced);
3. gradients: ``grad.flow`` (every parameter trainable and reached), ``grad.check`` (gradcheck on a
   tiny float64 copy; optional), ``overfit.one_batch`` (one small batch driven below 0.01);
4. training: ``train.finite`` (a NaN/Inf loss or gradient stops the run), ``train.grad_norm`` (every
   step's gradient norm, logged, within a factor of step 0's: an explosion stops the run),
   ``train.loss_decreasing`` (after the first epochs), ``train.early_stopping`` (on validation loss;
   the best weights are restored);
5. ``baseline``: the model beats the logistic / ridge baseline on validation;
6. ``champion``: on the time-ordered holdout, the challenger against the predictions the champion
   served; promote only when the paired-bootstrap lower bound of the improvement is above 0 and no
   segment is worse by more than the margin.

Validation is the newest ``val_fraction`` of ``train`` in time order (``schema.time_column``), or a
seeded random share, unless passed. Preprocessing is fitted on the remaining train rows only.
Train and validation rows carry ``schema.weight_column`` (normalised to mean 1) in every loss and
metric; the holdout is unweighted (it stands for today's traffic).

On CUDA the training steps run under autocast (bf16, or fp16 with a GradScaler); the gates run in
float32 on the same device. On the CPU everything is float32, and one seed reproduces the run bit
for bit (global RNG forked and seeded, a seeded generator for the shuffles, deterministic
algorithms on for the duration of the call).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from agent.retrain import gates as G
from agent.retrain.tabular import (Batch, ModuleFactory, ModuleSpec, Preprocessor, Split, TabularMLP, TabularSchema,
                                   Task, TrainedModel, output_bias, predict_encoded, task_loss)

__all__ = ["TrainConfig", "EpochRecord", "TrainReport", "TrainResult", "Progress", "BatchHook", "InitFn", "train"]

Progress = Callable[[int, int, Mapping[str, float]], None]   # (epoch, total epochs, metrics)
BatchHook = Callable[[int, Batch], Batch]                     # (global step, batch) -> batch
InitFn = Callable[[nn.Module], None]                          # re-initialises a fresh module in place


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters and gate thresholds (each gate's threshold is named after it)."""

    seed: int = 0
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 4
    min_delta: float = 1e-4
    val_fraction: float = 0.2
    amp: bool = True                       # autocast on CUDA; the CPU is always float32
    cpu_threads: int = 1                   # torch and BLAS threads during the call (0: leave as set)
    min_train_rows: int = 50               # data.shapes
    normalised_tolerance: float = 0.05     # data.normalised
    alignment_margin: float = 0.02         # data.label_alignment: 1 - loss / loss on permuted labels
    alignment_permutations: int = 2
    init_loss_tolerance: float = 0.25      # init.loss: |loss0 - chance| / chance
    gradcheck: bool = True                 # grad.check
    gradcheck_rows: int = 4
    overfit_rows: int = 32                 # overfit.one_batch
    overfit_steps: int = 500
    overfit_lr: float = 1e-2
    overfit_target: float = 0.01
    grad_explode_factor: float = 100.0     # train.grad_norm: step norm / step-0 norm
    loss_check_epochs: int = 3             # train.loss_decreasing: epoch-k loss / step-0 loss
    loss_decrease_ratio: float = 0.99
    baseline_margin: float = 0.0           # baseline
    bootstrap_resamples: int = 2000        # champion
    confidence: float = 0.95
    segment_margin: float = 0.02
    min_segment_rows: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        positive = ("epochs", "batch_size", "lr", "patience", "min_train_rows", "alignment_permutations",
                    "gradcheck_rows", "overfit_rows", "overfit_steps", "overfit_lr", "overfit_target",
                    "grad_explode_factor", "loss_check_epochs", "loss_decrease_ratio", "bootstrap_resamples")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("cpu_threads", "weight_decay", "min_delta", "normalised_tolerance", "init_loss_tolerance",
                     "segment_margin", "min_segment_rows"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("val_fraction", "confidence"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


@dataclass(frozen=True, slots=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    grad_norm_mean: float
    grad_norm_max: float
    seconds: float


@dataclass(frozen=True, slots=True)
class TrainReport:
    task: Task
    gates: tuple[G.Gate, ...]
    failed_gate: str | None        # the first gate that failed, None when all passed
    healthy: bool                  # every gate before the champion comparison passed
    promote: bool                  # healthy and the champion gate passed
    rows: dict[str, int]
    metrics: dict[str, float]
    history: tuple[EpochRecord, ...]
    step_grad_norms: tuple[float, ...]
    comparison: G.ChampionComparison | None
    timings: dict[str, float]
    environment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "verdict": self.verdict, "healthy": self.healthy, "promote": self.promote,
                "failed_gate": self.failed_gate, "gates": [g.to_dict() for g in self.gates],
                "rows": self.rows, "metrics": {k: G.json_float(v) for k, v in self.metrics.items()},
                "history": [{k: G.json_float(v) if isinstance(v, float) else v for k, v in asdict(e).items()}
                            for e in self.history],
                "step_grad_norms": [G.json_float(v) for v in self.step_grad_norms],
                "comparison": None if self.comparison is None else self.comparison.to_dict(),
                "timings": self.timings, "environment": self.environment}

    @property
    def verdict(self) -> str:
        return "promote" if self.promote else ("reject" if self.healthy else "failed")

    def summary(self) -> str:
        env, m = self.environment, self.metrics
        lines = [f"training report: {self.task} model on {env['device']} ({env['precision']}), seed {env['seed']}, "
                 f"torch {env['torch']}",
                 "rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items())]
        width = max([len(g.name) for g in self.gates] + [4])
        lines.append(f"{'gate':<{width}}  result  {'figure':>10}  {'threshold':>10}  detail")
        for g in self.gates:
            fig = "-" if g.figure is None else f"{g.figure:.4g}"
            thr = "-" if g.threshold is None else f"{g.threshold:.4g}"
            lines.append(f"{g.name:<{width}}  {'PASS' if g.passed else 'FAIL':<6}  {fig:>10}  {thr:>10}  {g.detail}")
        if self.history:
            best = m.get("best_epoch")
            per_epoch = sum(e.seconds for e in self.history) / len(self.history)
            lines.append(f"training: {len(self.history)} epochs (best {best}), {per_epoch:.3f} s/epoch, "
                         f"total {self.timings.get('total', 0.0):.2f} s")
        failed = next((g for g in self.gates if not g.passed), None)
        if self.promote:
            lines.append("HEALTHY: promote the challenger")
        elif self.healthy:
            lines.append(f"HEALTHY, NOT PROMOTED (the champion stays): {failed.name if failed else 'champion'}: "
                         f"{failed.detail if failed else ''}")
        else:
            lines.append(f"FAILED at {failed.name}: {failed.detail}" if failed else "FAILED")
        return "\n".join(lines)


@dataclass(slots=True)
class TrainResult:
    model: TrainedModel | None     # None when the run stopped before training finished
    report: TrainReport


class _Stop(Exception):
    pass


class _Run:
    """The state of one call: gates so far, timings, history."""

    def __init__(self) -> None:
        self.gates: list[G.Gate] = []
        self.timings: dict[str, float] = {}
        self.history: list[EpochRecord] = []
        self.norms: list[float] = []
        self.metrics: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.comparison: G.ChampionComparison | None = None
        self.model: TrainedModel | None = None

    def check(self, gate: G.Gate) -> None:
        self.gates.append(gate)
        if not gate.passed:
            raise _Stop(gate.name)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 4)


@contextmanager
def _reproducible(device: torch.device, threads: int) -> Iterator[None]:
    """Deterministic algorithms on, and a fixed thread count (torch intra-op and BLAS): a small MLP's
    step is dominated by thread synchronisation (one thread: ~3 ms a step here, two threads on a
    loaded 2-core machine: ~100 ms), and a fixed count keeps CPU reductions in one order."""
    from threadpoolctl import threadpool_limits

    prev, prev_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        if threads:
            torch.set_num_threads(threads)
            with threadpool_limits(limits=threads):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def _precision(device: torch.device, amp: bool) -> tuple[torch.dtype | None, str]:
    if device.type != "cuda" or not amp:
        return None, "float32"
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, "bf16 autocast"
    return torch.float16, "fp16 autocast + GradScaler"


def _environment(cfg: TrainConfig, device: torch.device, precision: str, threads: int) -> dict[str, Any]:
    import sklearn
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"seed": cfg.seed, "device": str(device), "device_name": name, "precision": precision,
            "deterministic": True, "torch_threads": threads, "torch": torch.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__, "pandas": pd.__version__,
            "python": platform.python_version(), "cuda": torch.version.cuda, "config": asdict(cfg)}


def _split_validation(frame: pd.DataFrame, schema: TabularSchema, cfg: TrainConfig
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    n_val = max(1, int(round(len(frame) * cfg.val_fraction)))
    if schema.time_column is not None:
        order = np.argsort(pd.to_datetime(frame[schema.time_column]).to_numpy(), kind="stable")
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(frame))
    return frame.iloc[order[:-n_val]], frame.iloc[order[-n_val:]]


def _make_split(pre: Preprocessor, frame: pd.DataFrame, schema: TabularSchema, weighted: bool) -> Split:
    if weighted and schema.weight_column is not None:
        w = frame[schema.weight_column].to_numpy(dtype=np.float64)
        w = w / w.mean() if np.isfinite(w).all() and w.mean() > 0 else w
    else:
        w = np.ones(len(frame))
    return Split(pre.transform(frame), pre.encode_target(frame[schema.target]), w.astype(np.float32))


def _segments(holdout: pd.DataFrame, masks: Mapping[str, np.ndarray] | None,
              columns: Sequence[str]) -> dict[str, np.ndarray]:
    out = {name: np.asarray(mask, dtype=bool) for name, mask in (masks or {}).items()}
    for col in columns:
        values = holdout[col]
        for v in sorted(values.dropna().unique(), key=repr):
            out[f"{col}={v}"] = (values == v).to_numpy()
    for name, mask in out.items():
        if mask.shape != (len(holdout),):
            raise ValueError(f"segment {name!r} mask has shape {mask.shape}, holdout has {len(holdout)} rows")
    return out


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(k, n), replace=False))


def train(train: pd.DataFrame, holdout: pd.DataFrame, schema: TabularSchema, config: TrainConfig | None = None, *,
          validation: pd.DataFrame | None = None, segments: Mapping[str, np.ndarray] | None = None,
          segment_columns: Sequence[str] = (), preprocessor: Preprocessor | None = None,
          module_factory: ModuleFactory | None = None, init: InitFn | None = None,
          on_batch: BatchHook | None = None, progress: Progress | None = None,
          device: str | torch.device | None = None) -> TrainResult:
    """Train a tabular model on ``train`` (validation carved from it unless given), judge it on the
    time-ordered ``holdout`` against ``schema.served_column``, and report every gate.

    ``segments`` (boolean masks over holdout rows) and ``segment_columns`` (one segment per value)
    name the slices the challenger must not make worse. The seams a caller (or a test) uses:
    ``preprocessor`` (an already fitted one instead of fitting on train), ``module_factory``
    (``ModuleSpec -> nn.Module`` with ``forward(numeric, categorical)``), ``init`` (re-initialises
    the fresh module), ``on_batch`` (sees and may replace each training batch), ``progress``
    (called after every epoch). Nothing here raises on a failing gate: the report says which.
    """
    cfg = config or TrainConfig()
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp_dtype, precision = _precision(dev, cfg.amp)
    run = _Run()
    t0 = time.perf_counter()
    with _reproducible(dev, cfg.cpu_threads), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        run.timings["setup"] = round(time.perf_counter() - t0, 4)   # first call: torch imports its compiler stack
        torch.manual_seed(cfg.seed)
        try:
            _run(run, train, holdout, schema, cfg, dev, amp_dtype, validation=validation, segments=segments,
                 segment_columns=segment_columns, preprocessor=preprocessor, module_factory=module_factory,
                 init=init, on_batch=on_batch, progress=progress)
        except _Stop:
            pass
        threads = torch.get_num_threads()
    run.timings["total"] = round(time.perf_counter() - t0, 4)
    failed = next((g.name for g in run.gates if not g.passed), None)
    healthy = failed is None or failed == "champion"
    report = TrainReport(schema.task, tuple(run.gates), failed, healthy, failed is None, run.rows, run.metrics,
                         tuple(run.history), tuple(run.norms), run.comparison, run.timings,
                         _environment(cfg, dev, precision, threads))
    return TrainResult(run.model, report)


def _run(run: _Run, frame: pd.DataFrame, holdout: pd.DataFrame, schema: TabularSchema, cfg: TrainConfig,
         dev: torch.device, amp_dtype: torch.dtype | None, *, validation: pd.DataFrame | None,
         segments: Mapping[str, np.ndarray] | None, segment_columns: Sequence[str],
         preprocessor: Preprocessor | None, module_factory: ModuleFactory | None, init: InitFn | None,
         on_batch: BatchHook | None, progress: Progress | None) -> None:
    task = schema.task
    # ------------------------------------------------------------------ data
    with run.timed("preprocess"):
        fit_frame, val_frame = (frame, validation) if validation is not None else _split_validation(frame, schema, cfg)
        try:
            pre = preprocessor or Preprocessor.fit(fit_frame, schema)
            splits = {"train": _make_split(pre, fit_frame, schema, True),
                      "validation": _make_split(pre, val_frame, schema, True),
                      "holdout": _make_split(pre, holdout, schema, False)}
        except (ValueError, KeyError) as e:
            run.check(G.Gate("data.preprocess", False, None, None, f"{type(e).__name__}: {e}"))
        run.rows = {k: len(s) for k, s in splits.items()}
    tr, va, ho = splits["train"], splits["validation"], splits["holdout"]
    k = max(pre.out_dim, 2) if task != "regression" else 1
    scale = pre.target_std if task == "regression" else 1.0
    with run.timed("data_gates"):
        run.check(G.shapes_gate(splits, pre.n_numeric, pre.cardinalities, cfg.min_train_rows))
        run.check(G.dtypes_gate(splits, task))
        run.check(G.finite_gate(splits))
        run.check(G.normalised_gate(tr, pre.standardised, cfg.normalised_tolerance, pre.feature_names))
        with run.timed("alignment_fits"):
            rng = np.random.default_rng(cfg.seed)

            def fitted_loss(target: np.ndarray | None) -> float:
                pred = G.alignment_predictions(task, tr, va, pre.cardinalities, k, target=target, seed=cfg.seed)
                return G.alignment_loss(task, va.target, pred, va.weight)

            real = fitted_loss(None)
            permuted = [fitted_loss(rng.permutation(tr.target)) for _ in range(cfg.alignment_permutations)]
        run.check(G.alignment_gate(real, permuted, cfg.alignment_margin))
        cols = list(schema.features) + [schema.target]
        fit_rows = pd.concat([fit_frame, val_frame], ignore_index=True)
        ids = schema.id_column
        run.check(G.leakage_gate(None if ids is None else fit_rows[ids].to_numpy(),
                                 None if ids is None else holdout[ids].to_numpy(),
                                 G.row_hashes(fit_rows, cols), G.row_hashes(holdout, cols)))
    # ------------------------------------------------------------------ model and its gates
    with run.timed("model_gates"):
        spec = ModuleSpec(pre.n_numeric, pre.cardinalities, pre.out_dim, cfg.hidden, cfg.dropout,
                          output_bias(task, tr.target, tr.weight.astype(np.float64), pre.out_dim))
        module = (module_factory or TabularMLP)(spec)
        if init is not None:
            init(module)
        module.to(dev)
        train_all, val_all = tr.batch(device=dev), va.batch(device=dev)
        run.check(G.symmetry_gate(module))
        init_loss = _loss(module, task, train_all)
        init_val = _loss(module, task, val_all)
        chance = G.chance_loss(task, tr.target, tr.weight, k)
        run.metrics.update(init_loss=init_loss, chance_loss=chance, init_val_loss=init_val)
        run.check(G.init_loss_gate(init_loss, chance, cfg.init_loss_tolerance, k))
        probe = tr.batch(_sample(len(tr), cfg.batch_size, cfg.seed), dev)
        run.check(G.gradient_flow_gate(module, probe, task))
        if cfg.gradcheck:
            run.check(G.gradcheck_gate(module, tr.batch(_sample(len(tr), cfg.gradcheck_rows, cfg.seed + 1)), task))
        run.check(G.overfit_gate(module, tr.batch(_sample(len(tr), cfg.overfit_rows, cfg.seed + 2), dev, unweighted=True),
                                 task, target=cfg.overfit_target, max_steps=cfg.overfit_steps, lr=cfg.overfit_lr))
        reference = _grad_norm(module, probe, task)
    # ------------------------------------------------------------------ training
    with run.timed("training"):
        _fit(run, module, task, cfg, dev, amp_dtype, train_all, val_all, init_loss, init_val, reference,
             on_batch, progress)
    # ------------------------------------------------------------------ baseline and champion
    module.eval()
    run.model = TrainedModel(pre, spec, module, {"seed": cfg.seed})
    with run.timed("evaluation"):
        name = G.PRIMARY[task][0]
        with run.timed("baseline_fit"):
            base_val = G.baseline_predictions(task, tr, va, pre.cardinalities, k)
        val_pred = predict_encoded(module, task, va.features, dev)
        model_val = G.metric(task, va.target, val_pred, va.weight) * scale
        base_metric = G.metric(task, va.target, base_val, va.weight) * scale
        run.metrics.update({f"val_{name}": model_val, f"baseline_val_{name}": base_metric})
        run.check(G.baseline_gate(task, model_val, base_metric, cfg.baseline_margin))
        challenger = predict_encoded(module, task, ho.features, dev)
        run.metrics[f"holdout_{name}"] = G.metric(task, ho.target, challenger) * scale
        run.metrics["holdout_loss"] = _loss(module, task, ho.batch(device=dev))
        module.to("cpu")
        if schema.served_column is None:
            run.check(G.Gate("champion", True, None, 0.0, "skipped: no served column, no champion to beat"))
            return
        champion = pre.encode_served(holdout[schema.served_column])
        run.comparison = G.compare_champion(
            task, ho.target, champion, challenger, segments=_segments(holdout, segments, segment_columns),
            n_resamples=cfg.bootstrap_resamples, confidence=cfg.confidence, seed=cfg.seed,
            segment_margin=cfg.segment_margin, min_segment_rows=cfg.min_segment_rows)
        c = run.comparison
        run.metrics.update({f"holdout_champion_{name}": c.champion * scale,
                            "improvement": c.improvement.estimate * scale,
                            "improvement_low": c.improvement.low * scale,
                            "improvement_high": c.improvement.high * scale})
        run.check(G.champion_gate(c, scale))


@torch.no_grad()
def _loss(module: nn.Module, task: Task, batch: Batch) -> float:
    was = module.training
    module.eval()
    value = float(batch.loss(module, task))
    module.train(was)
    return value


def _grad_norm(module: nn.Module, batch: Batch, task: Task) -> float:
    module.eval()
    module.zero_grad(set_to_none=True)
    batch.loss(module, task).backward()
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None]))
    module.zero_grad(set_to_none=True)
    module.train()
    return norm


def _fit(run: _Run, module: nn.Module, task: Task, cfg: TrainConfig, dev: torch.device,
         amp_dtype: torch.dtype | None, train_all: Batch, val_all: Batch, init_loss: float, init_val: float,
         reference: float, on_batch: BatchHook | None, progress: Progress | None) -> None:
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(train_all.target)
    check_epoch = min(cfg.loss_check_epochs, cfg.epochs)
    best_val, best_epoch, best_state, bad, step, skipped = math.inf, 0, None, 0, 0, 0
    fault: str | None = None
    exploded: str | None = None
    stopped = False
    module.train()
    for epoch in range(1, cfg.epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(dev)
        total, mass, epoch_norms = 0.0, 0.0, []
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            b = Batch(train_all.numeric[idx], train_all.categorical[idx], train_all.target[idx], train_all.weight[idx])
            if on_batch is not None:
                b = on_batch(step, b)
            step += 1
            with (torch.autocast(device_type=dev.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()):
                out = module(b.numeric, b.categorical)
            loss = task_loss(task, out, b.target, b.weight)
            value = loss.item()
            if not math.isfinite(value):
                fault = f"non-finite loss {value} at epoch {epoch}, step {step}"
                break
            opt.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if scaler is not None:
                scaler.unscale_(opt)
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
            if not math.isfinite(norm):
                if scaler is None or skipped >= 20:
                    fault = f"non-finite gradient norm at epoch {epoch}, step {step}"
                    break
                skipped += 1            # fp16 overflow: the scaler skips the step and lowers its scale
                scaler.step(opt)
                scaler.update()
                continue
            skipped = 0
            run.norms.append(norm)
            epoch_norms.append(norm)
            if norm > cfg.grad_explode_factor * reference:
                exploded = f"epoch {epoch}, step {step} (norm {norm:.4g})"
                break
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            m = float(b.weight.sum())
            total += value * m
            mass += m
        if fault is not None or exploded is not None:
            break
        val = _loss(module, task, val_all)
        train_loss = total / mass if mass > 0 else math.nan
        run.history.append(EpochRecord(epoch, train_loss, val, float(np.mean(epoch_norms)) if epoch_norms else math.nan,
                                       max(epoch_norms, default=math.nan), round(time.perf_counter() - t, 4)))
        if progress is not None:
            progress(epoch, cfg.epochs, {"train_loss": train_loss, "val_loss": val,
                                         "grad_norm_max": run.history[-1].grad_norm_max})
        if val < best_val - cfg.min_delta:
            best_val, best_epoch, bad = val, epoch, 0
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            bad += 1
        if epoch == check_epoch and not G.loss_decrease_gate(init_loss, train_loss, epoch,
                                                             cfg.loss_decrease_ratio).passed:
            break
        if bad >= cfg.patience:
            stopped = True
            break
    max_norm = max(run.norms, default=0.0)
    run.check(G.nonfinite_gate(fault, step))
    run.check(G.grad_norm_gate(max_norm, reference, cfg.grad_explode_factor, exploded))
    checked = run.history[min(check_epoch, len(run.history)) - 1] if run.history else None
    run.check(G.loss_decrease_gate(init_loss, checked.train_loss if checked else math.nan,
                                   checked.epoch if checked else 0, cfg.loss_decrease_ratio))
    if best_state is not None:
        module.load_state_dict(best_state)
    run.metrics.update(best_epoch=best_epoch, best_val_loss=best_val, epochs_run=len(run.history), steps=step)
    run.check(G.early_stopping_gate(init_val, best_val, best_epoch, len(run.history), stopped))
