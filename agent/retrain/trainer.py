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

import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from agent.retrain import gates as G
from agent.retrain.tabular import (Batch, ModuleFactory, ModuleSpec, Preprocessor, Split, TabularMLP, TabularSchema,
                                   TrainedModel, output_bias, predict_encoded)
from agent.retrain.train_config import TrainConfig
from agent.retrain.train_loop import _fit, _grad_norm, _loss, _Run, _Stop
from agent.retrain.train_report import EpochRecord, TrainReport, TrainResult

__all__ = ["TrainConfig", "EpochRecord", "TrainReport", "TrainResult", "Progress", "BatchHook", "InitFn", "train"]

Progress = Callable[[int, int, Mapping[str, float]], None]   # (epoch, total epochs, metrics)
BatchHook = Callable[[int, Batch], Batch]                     # (global step, batch) -> batch
InitFn = Callable[[nn.Module], None]                          # re-initialises a fresh module in place


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
