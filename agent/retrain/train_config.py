"""The trainer's hyperparameters and gate thresholds (:class:`TrainConfig`), checked once when built;
:func:`agent.retrain.trainer.train` reads them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainConfig"]


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
