"""The model's gates of the checklist (:mod:`agent.retrain.gates`): initialisation, gradients, the
one-batch overfit, the checks during training, and the baseline to beat."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from agent.retrain.gate import Gate, _gate
from agent.retrain.scoring import PRIMARY
from agent.retrain.tabular import Batch, Task

__all__ = ["symmetry_gate", "chance_loss", "init_loss_gate", "gradient_flow_gate", "gradcheck_gate", "overfit_gate",
           "nonfinite_gate", "grad_norm_gate", "loss_decrease_gate", "early_stopping_gate", "baseline_gate"]


# ----------------------------------------------------------------------------- initialisation


def symmetry_gate(module: nn.Module) -> Gate:
    """No weight matrix (ndim >= 2, more than one row) has all rows equal: identical units get
    identical gradients and never differentiate."""
    mats = [(n, p) for n, p in module.named_parameters() if p.ndim >= 2 and p.shape[0] > 1]
    flat = torch.cat([p.detach().flatten().float() for p in module.parameters()]) if mats else None
    symmetric = [n for n, p in mats if bool((p.detach() == p.detach()[:1]).all())]
    if not mats:
        return _gate("init.symmetry", True, None, 0, "skipped: no weight matrix with more than one row")
    detail = (f"weight matrices with all rows equal: {symmetric}" if symmetric
              else f"{len(mats)} weight matrices, none with identical rows (<= 0)")
    if flat is not None and bool((flat == flat[0]).all()):
        detail += "; every parameter has the same value"
    return _gate("init.symmetry", not symmetric, len(symmetric), 0, detail)


def chance_loss(task: Task, y: np.ndarray, weight: np.ndarray, n_classes: int) -> float:
    """The loss of the best constant prediction: the entropy of the weighted class prior (ln k when
    balanced), or the weighted variance of the standardised target."""
    w = weight.astype(np.float64) / weight.sum()
    if task == "regression":
        return float((w * (y - (w * y).sum()) ** 2).sum())
    p = np.bincount(y.astype(np.int64), weights=w, minlength=n_classes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def init_loss_gate(loss0: float, chance: float, tolerance: float, n_classes: int) -> Gate:
    dev = abs(loss0 - chance) / chance if chance > 0 else math.inf
    lnk = f" (ln {n_classes} = {math.log(n_classes):.4f})" if n_classes > 1 else ""
    return _gate("init.loss", dev <= tolerance, dev, tolerance,
                 f"train loss at step 0 {loss0:.4f} vs chance {chance:.4f}{lnk}: |loss0-chance|/chance <= {tolerance}")


# ----------------------------------------------------------------------------- gradients


def gradient_flow_gate(module: nn.Module, batch: Batch, task: Task) -> Gate:
    """One backward pass (eval mode): every parameter is trainable and gets a non-zero gradient."""
    module.eval()
    module.zero_grad(set_to_none=True)
    batch.loss(module, task).backward()
    frozen, none, zero = [], [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            frozen.append(name)
        elif p.grad is None:
            none.append(name)
        elif float(p.grad.abs().max()) == 0.0:
            zero.append(name)
    module.zero_grad(set_to_none=True)
    module.train()
    bad = frozen + none + zero
    parts = [f"{what}: {names}" for what, names in (("frozen (requires_grad False)", frozen),
                                                      ("no gradient (detached)", none), ("zero gradient", zero)) if names]
    total = sum(1 for _ in module.parameters())
    return _gate("grad.flow", not bad, len(bad), 0,
                 "; ".join(parts) or f"all {total} parameter tensors get a non-zero gradient (<= 0 without)")


def gradcheck_gate(module: nn.Module, batch: Batch, task: Task) -> Gate:
    """torch.autograd.gradcheck (fast mode) of the loss w.r.t. the trainable parameters on a tiny
    float64 copy of the model and batch; the figure is the relative error of one directional
    derivative against central differences."""
    from torch.func import functional_call

    m = copy.deepcopy(module).to(device="cpu", dtype=torch.float64).eval()
    num = batch.numeric.detach().cpu().double()
    cat = batch.categorical.detach().cpu()
    y = batch.target.detach().cpu()
    y = y if task == "multiclass" else y.double()
    w = batch.weight.detach().cpu().double()
    named = [(n, p.detach().clone().requires_grad_(True)) for n, p in m.named_parameters() if p.requires_grad]
    if not named:
        return _gate("grad.check", False, None, 1e-4, "no trainable parameters")
    names = [n for n, _ in named]
    params = tuple(p for _, p in named)

    def loss(*ps: torch.Tensor) -> torch.Tensor:
        from agent.retrain.tabular import task_loss
        return task_loss(task, functional_call(m, dict(zip(names, ps)), (num, cat)), y, w)

    gen = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    grads = torch.autograd.grad(loss(*params), params, allow_unused=True)
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, direction) if g is not None)
    eps = 1e-6
    with torch.no_grad():
        plus = float(loss(*(p + eps * v for p, v in zip(params, direction))))
        minus = float(loss(*(p - eps * v for p, v in zip(params, direction))))
    numeric = (plus - minus) / (2 * eps)
    rel = abs(analytic - numeric) / max(abs(numeric), abs(analytic), 1e-12)
    ok = torch.autograd.gradcheck(loss, params, eps=eps, atol=1e-5, rtol=1e-3, fast_mode=True,
                                  raise_exception=False)
    return _gate("grad.check", ok, rel, 1e-3,
                 f"gradcheck {'passed' if ok else 'FAILED'} on {len(num)} float64 rows; directional "
                 f"derivative analytic {analytic:.6g} vs numeric {numeric:.6g}")


def overfit_gate(module: nn.Module, batch: Batch, task: Task, *, target: float, max_steps: int, lr: float) -> Gate:
    """A copy of the initialised model (eval mode: no dropout) drives one small batch's loss below
    ``target`` with Adam within ``max_steps``."""
    m = copy.deepcopy(module).eval()
    params = [p for p in m.parameters() if p.requires_grad]
    if not params:
        return _gate("overfit.one_batch", False, None, target, "no trainable parameters")
    opt = torch.optim.Adam(params, lr=lr)
    loss = float("nan")
    for step in range(max_steps + 1):
        value = batch.loss(m, task)
        loss = value.item()
        if loss < target or not math.isfinite(loss) or step == max_steps:
            break
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return _gate("overfit.one_batch", loss < target, loss, target,
                 f"loss on one batch of {len(batch.target)} rows after {step} Adam steps (lr {lr}) < {target}")


# ----------------------------------------------------------------------------- during training


def nonfinite_gate(fault: str | None, steps: int) -> Gate:
    return _gate("train.finite", fault is None, 0 if fault is None else 1, 0,
                 fault or f"loss and gradients finite over {steps} steps (faults <= 0)")


def grad_norm_gate(max_norm: float, reference: float, factor: float, at: str | None) -> Gate:
    """The total gradient norm of every step stays within ``factor`` times its value at step 0."""
    ratio = max_norm / reference if reference > 0 else math.inf
    where = f"; exceeded at {at}" if at else ""
    return _gate("train.grad_norm", at is None and ratio <= factor, ratio, factor,
                 f"max step gradient norm {max_norm:.4g} / step-0 norm {reference:.4g} <= {factor}{where}")


def loss_decrease_gate(init_loss: float, epoch_loss: float, epoch: int, max_ratio: float) -> Gate:
    ratio = epoch_loss / init_loss if init_loss > 0 else math.inf
    return _gate("train.loss_decreasing", ratio <= max_ratio, ratio, max_ratio,
                 f"mean train loss of epoch {epoch} {epoch_loss:.4f} / loss at step 0 {init_loss:.4f} <= {max_ratio}")


def early_stopping_gate(init_val: float, best_val: float, best_epoch: int, epochs_run: int, stopped: bool) -> Gate:
    how = "stopped early" if stopped else "ran all epochs"
    return _gate("train.early_stopping", best_val < init_val, best_val, init_val,
                 f"best validation loss {best_val:.4f} at epoch {best_epoch} (weights restored; {how} "
                 f"after {epochs_run}) < validation loss at step 0 {init_val:.4f}")


def baseline_gate(task: Task, model_metric: float, baseline_metric: float, margin: float) -> Gate:
    name, higher = PRIMARY[task]
    gain = model_metric - baseline_metric if higher else baseline_metric - model_metric
    return _gate("baseline", gain > margin, gain, margin,
                 f"validation {name}: model {model_metric:.4f} vs {'logistic' if task != 'regression' else 'ridge'} "
                 f"baseline {baseline_metric:.4f}; improvement > {margin}")
