"""The state of one :func:`agent.retrain.trainer.train` call (gates so far, timings, history) and
the training loop it runs: epochs of AdamW steps under the ``train.*`` gates, early stopping on
validation loss."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from agent.retrain import gates as G
from agent.retrain.tabular import Batch, Task, TrainedModel, task_loss
from agent.retrain.train_config import TrainConfig
from agent.retrain.train_report import EpochRecord

if TYPE_CHECKING:
    from agent.retrain.trainer import BatchHook, Progress

__all__ = ["_Run", "_Stop", "_fit", "_grad_norm", "_loss"]


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
