"""Maximum mean discrepancy (MMD) two-sample test for multivariate drift.

The statistic and its permutation null are computed by torch (CUDA when present, float64 on
every device) from one pass over the kernel matrix of the pooled sample; torch is imported
only when a window is compared, so ``import detectors`` works without it.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from detectors._checks import check_int as _check_int
from detectors._checks import is_real as _is_real
from detectors.result import DriftResult
from detectors.rows import RowSample

__all__ = ["MMDDrift"]

_KERNELS = ("rbf",)
# Permutation statistics closer than this to the observed one count as ties (>=): sums of up
# to N^2 kernel values in [0, 1] carry ~1e-14 rounding, and ties must not flip between devices.
_TIE_TOL = 1e-12
# Kernel elements computed per row block (float64): bounds memory to O(block * N + P * N).
_BLOCK_ELEMENTS = {"cpu": 1 << 24, "cuda": 1 << 27}
_MEDIAN_ROWS = 1_000  # reference rows used for the median heuristic and the kernel scale


class MMDDrift:
    """Kernel two-sample test (maximum mean discrepancy) between a reference and a window.

    Statistic: the unbiased estimate of the squared MMD with a Gaussian (RBF) kernel
    ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))`` on features standardised by the reference
    mean and standard deviation (Gretton et al. 2012, eq. 3)::

        MMD^2_u = sum_{i!=j} k(x_i, x_j) / (n(n-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
                  - 2 sum_{i,j} k(x_i, y_j) / (n m)

    ``sigma=None`` takes the median pairwise distance between (standardised) reference rows.
    The p-value is a permutation test on the pooled sample, ``(1 + #{perm >= observed}) /
    (1 + n_permutations)``, with permutations drawn from ``numpy.random.default_rng(seed)``,
    so CPU and CUDA see the same permutations and give the same answer.

    Effect size: ``MMD / s_ref`` with ``MMD = sqrt(max(0, MMD^2_u))`` and
    ``s_ref^2 = 1 - mean_{i!=j} k(x_i, x_j)`` over reference rows, the mean squared RKHS
    distance of a reference row's embedding from the reference mean embedding. It is the
    distance between the two mean embeddings in units of the reference's own spread in
    feature space (a Cohen's-d analogue): ~0 for no drift; a 0.5 sd shift of one feature
    gives ~0.34 with 1 feature, ~0.16 with 5 and ~0.12 with 20 (median bandwidth); disjoint
    samples reach ``sqrt(2) / s_ref``. ``drifted`` is ``p_value < alpha and effect_size >=
    min_effect``; the default floor 0.05 (about a 0.15 sd shift of one of five features) keeps
    a huge window from alarming on a trivial shift.

    Assumptions: rows are independent within and between samples (the permutation test is
    exact under exchangeability, H0: same distribution); numeric, finite features.

    When it misleads: autocorrelated windows (time series) make the permutation p-value far
    too small; one-hot or heavy-tailed features distort the Euclidean distance the kernel sees;
    in high dimension with a median bandwidth the test loses power against shifts confined to
    a few features (prefer per-feature tests or the domain classifier there); a reference
    larger than ``max_reference`` is subsampled, which costs power, not validity.

    Reference: A. Gretton, K. Borgwardt, M. Rasch, B. Schoelkopf, A. Smola (2012),
    "A Kernel Two-Sample Test", JMLR 13:723-773.

    >>> rng = np.random.default_rng(0)
    >>> det = MMDDrift(n_permutations=100, device="cpu").fit(rng.normal(size=(200, 3)))
    >>> det.compare(rng.normal(size=(200, 3))).drifted
    False
    >>> det.compare(rng.normal(loc=1.0, size=(200, 3))).drifted
    True

    Windows can be summarised batch by batch (:class:`~detectors.rows.RowSample`, the
    standardised rows) and compared once: ``s = det.summarise(b1); s += det.summarise(b2);
    det.compare(s)`` equals ``det.compare(concatenated)``.
    """

    method = "mmd"

    def __init__(
        self,
        n_permutations: int = 200,
        kernel: str = "rbf",
        sigma: float | None = None,
        device: str = "auto",
        seed: int = 0,
        alpha: float = 0.05,
        max_reference: int = 5_000,
        min_effect: float = 0.05,
        perm_batch: int | None = None,
        block_rows: int | None = None,
    ) -> None:
        _check_int("n_permutations", n_permutations, 1)
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
        if sigma is not None and not (_is_real(sigma) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number or None, got {sigma!r}")
        if not isinstance(device, str) or not (
            device in ("auto", "cpu", "cuda") or device.startswith("cuda:")
        ):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        _check_int("seed", seed, 0)
        if not (_is_real(alpha) and 0.0 < alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        _check_int("max_reference", max_reference, 2)
        if not (_is_real(min_effect) and math.isfinite(min_effect) and min_effect >= 0):
            raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect!r}")
        if perm_batch is not None:
            _check_int("perm_batch", perm_batch, 1)
        if block_rows is not None:
            _check_int("block_rows", block_rows, 1)
        self.n_permutations = n_permutations
        self.kernel = kernel
        self.sigma = sigma
        self.device = device
        self.seed = seed
        self.alpha = alpha
        self.max_reference = max_reference
        self.min_effect = min_effect
        self.perm_batch = perm_batch
        self.block_rows = block_rows
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._reference: np.ndarray | None = None  # standardised, possibly subsampled
        self._sigma: float = float("nan")
        self._scale: float = float("nan")

    def fit(self, reference: np.ndarray) -> Self:
        """Learn the standardisation, bandwidth and kernel scale from ``reference`` [n, d]."""
        ref = _as_matrix("reference", reference)
        self._mean = ref.mean(axis=0)
        std = ref.std(axis=0)
        self._std = np.where(std > 0, std, 1.0)
        rng = np.random.default_rng(self.seed)
        if len(ref) > self.max_reference:
            ref = ref[np.sort(rng.choice(len(ref), self.max_reference, replace=False))]
        self._reference = (ref - self._mean) / self._std
        sub = self._reference
        if len(sub) > _MEDIAN_ROWS:
            sub = sub[rng.choice(len(sub), _MEDIAN_ROWS, replace=False)]
        d2 = _pairwise_sq(sub)[np.triu_indices(len(sub), k=1)]
        if self.sigma is not None:
            self._sigma = float(self.sigma)
        else:
            positive = np.sqrt(d2[d2 > 0])
            self._sigma = float(np.median(positive)) if positive.size else 1.0
        self._scale = math.sqrt(max(0.0, 1.0 - float(np.exp(-d2 / (2 * self._sigma**2)).mean())))
        return self

    @property
    def sigma_(self) -> float:
        """Bandwidth in use (standardised units); NaN before :meth:`fit`."""
        return self._sigma

    def summarise(self, values: np.ndarray) -> RowSample:
        """Rows [m, d] of (part of) a window, checked and standardised by the reference."""
        if self._reference is None or self._mean is None or self._std is None:
            raise RuntimeError("MMDDrift.summarise() called before fit()")
        win = _as_matrix("window", values, min_rows=0)
        if win.shape[1] != self._reference.shape[1]:
            raise ValueError(
                f"window has {win.shape[1]} features, reference has {self._reference.shape[1]}"
            )
        return RowSample((win - self._mean) / self._std)

    def compare(self, window: RowSample | np.ndarray) -> DriftResult:
        """Test a window against the fitted reference: its :meth:`summarise` summary, or the
        raw rows [m, d] (summarised here)."""
        if self._reference is None or self._mean is None or self._std is None:
            raise RuntimeError("MMDDrift.compare() called before fit()")
        if not isinstance(window, RowSample):
            window = self.summarise(window)
        win = window.rows
        if win.shape[1] != self._reference.shape[1]:
            raise ValueError(
                f"window has {win.shape[1]} features, reference has {self._reference.shape[1]}"
            )
        if win.shape[0] < 2:
            raise ValueError(f"window needs at least 2 rows and 1 feature, got shape {win.shape}")
        pooled = np.concatenate([self._reference, win])
        n = len(self._reference)
        masks = _permutation_masks(len(pooled), n, self.n_permutations, self.seed)
        stats = _mmd2_assignments(
            pooled, n, masks, self._sigma, self.device, self.perm_batch, self.block_rows
        )
        observed, null = float(stats[0]), stats[1:]
        p_value = float((1 + np.count_nonzero(null >= observed - _TIE_TOL)) / (1 + len(null)))
        mmd = math.sqrt(max(0.0, observed))
        effect = mmd / self._scale if self._scale > 0 else (math.inf if mmd > 0 else 0.0)
        return DriftResult(
            feature="__multivariate__",
            method=self.method,
            statistic=observed,
            p_value=p_value,
            effect_size=effect,
            drifted=bool(p_value < self.alpha and effect >= self.min_effect),
        )


def _permutation_masks(n_total: int, n_first: int, n_permutations: int, seed: int) -> np.ndarray:
    """Boolean [1 + P, N] matrix; row 0 is the observed split, rows 1.. random splits."""
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(np.arange(n_total), (n_permutations, 1)), axis=1)
    masks = np.zeros((n_permutations + 1, n_total), dtype=bool)
    masks[0, :n_first] = True
    np.put_along_axis(masks[1:], perms[:, :n_first], True, axis=1)
    return masks


def _resolve_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but torch sees no CUDA device")
    return torch.device(device)


def _mmd2_assignments(
    pooled: np.ndarray,
    n: int,
    masks: np.ndarray,
    sigma: float,
    device: str,
    perm_batch: int | None,
    block_rows: int | None,
) -> np.ndarray:
    """Unbiased MMD^2 for every split in ``masks`` (True = first sample), in float64.

    With ``a`` the 0/1 indicator of the first sample, ``K0`` the kernel matrix of the pooled
    sample with a zero diagonal and ``r = K0 1``: ``sum_{i!=j in X} = a'K0a``, the cross sum is
    ``a'r - a'K0a`` and ``sum_{i!=j in Y} = 1'r - 2a'r + a'K0a``. ``K0`` is built once, one
    block of rows at a time and only on and above the diagonal (it is symmetric: the diagonal
    block is halved and every block counted twice), and each block meets all splits in one
    matrix product, so memory stays O(block * N + P * N).
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("MMDDrift needs torch: pip install 'driftwarden[torch]'") from exc

    dev = _resolve_device(device)
    n_total = pooled.shape[0]
    m = n_total - n
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least 2 rows in each sample")
    z = torch.from_numpy(np.ascontiguousarray(pooled, dtype=np.float64)).to(dev)
    split = torch.from_numpy(masks).to(dev)
    n_splits = split.shape[0]
    batch = perm_batch or n_splits
    if block_rows is None:
        block_rows = max(1, _BLOCK_ELEMENTS["cuda" if dev.type == "cuda" else "cpu"] // n_total)
    gamma = 1.0 / (2.0 * sigma * sigma)
    neg_sq = (z * z).sum(dim=1).mul_(-gamma)  # -gamma ||z_i||^2
    xx = torch.zeros(n_splits, dtype=torch.float64, device=dev)  # a'K0a
    ar = torch.zeros(n_splits, dtype=torch.float64, device=dev)  # a'r
    total = torch.zeros((), dtype=torch.float64, device=dev)  # 1'r
    for start in range(0, n_total, block_rows):
        stop = min(start + block_rows, n_total)
        # kb[i, j] = k(z_{start+i}, z_{start+j}) for the columns start.. (upper block row)
        kb = torch.addmm(neg_sq[None, start:], z[start:stop], z[start:].T, alpha=2.0 * gamma)
        kb.add_(neg_sq[start:stop, None]).clamp_(max=0.0).exp_()
        diag = kb[:, : stop - start]
        diag.mul_(0.5).fill_diagonal_(0.0)
        total += 2.0 * kb.sum()
        row_sums, col_sums = kb.sum(dim=1), kb.sum(dim=0)
        for lo in range(0, n_splits, batch):
            hi = min(lo + batch, n_splits)
            a = split[lo:hi, start:].to(torch.float64)  # [B, N - start]
            a_rows = a[:, : stop - start]  # [B, b]
            xx[lo:hi] += 2.0 * (a_rows * (kb @ a.T).T).sum(dim=1)
            ar[lo:hi] += a_rows @ row_sums + a @ col_sums
    yy = total - 2.0 * ar + xx
    cross = ar - xx
    mmd2 = xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2.0 * cross / (n * m)
    return mmd2.cpu().numpy()


def _pairwise_sq(x: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)


def _as_matrix(name: str, values: np.ndarray, min_rows: int = 2) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [rows, features], got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 feature, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; impute or drop them first")
    return arr

