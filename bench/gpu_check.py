"""One-shot check that MMDDrift gives the same answer on CPU and CUDA, with wall times.

    python bench/gpu_check.py            # ~2 min on an H100 host; CUDA rows "n/a" without a GPU
    python bench/gpu_check.py --quick    # small sizes only
    python bench/gpu_check.py --large    # adds 50,000 x 100 per sample (where CUDA pays off)

Each case draws reference and window (the window mean-shifted by 0.1 sd in every feature),
runs MMDDrift(n_permutations=200) on CPU (float64) and, when torch sees a GPU, on CUDA
(float64, same seed, same permutations), and prints wall time, statistic and p-value.
Exit status 1 if the devices disagree beyond tolerance: |statistic| 1e-9 (absolute, with
1e-7 relative), p-value by more than one permutation count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.mmd import MMDDrift  # noqa: E402

CASES = [(5_000, 20), (20_000, 50)]  # rows per sample (reference = window), features
QUICK = [(1_000, 10), (2_000, 20)]
LARGE = [(50_000, 100)]
N_PERMUTATIONS = 200


def _run(ref: np.ndarray, win: np.ndarray, device: str) -> tuple[float, float, float]:
    det = MMDDrift(n_permutations=N_PERMUTATIONS, device=device, max_reference=len(ref))
    start = time.perf_counter()
    result = det.fit(ref).compare(win)
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start, result.statistic, float(result.p_value or 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--large", action="store_true", help="add 50,000 rows x 100 features per sample")
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else "none"
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, GPU: {gpu}")
    if cuda:  # warm-up: CUDA context and kernels, not timed
        _run(np.zeros((50, 2)) + np.arange(50)[:, None], np.ones((50, 2)), "cuda")
    header = (f"{'rows/sample':>11} {'d':>3} {'cpu s':>8} {'cuda s':>8} {'speedup':>8} "
              f"{'statistic':>12} {'p cpu':>7} {'p cuda':>7} {'|dstat|':>9} {'|dp|':>6}")
    print(header)
    print("-" * len(header))
    ok = True
    p_tol = 1.0 / (N_PERMUTATIONS + 1) + 1e-12
    for n, d in QUICK if args.quick else CASES + (LARGE if args.large else []):
        rng = np.random.default_rng(n + d)
        ref = rng.normal(size=(n, d))
        win = rng.normal(loc=0.1, size=(n, d))
        t_cpu, s_cpu, p_cpu = _run(ref, win, "cpu")
        if cuda:
            t_gpu, s_gpu, p_gpu = _run(ref, win, "cuda")
            ds, dp = abs(s_cpu - s_gpu), abs(p_cpu - p_gpu)
            ok &= ds <= 1e-9 + 1e-7 * abs(s_cpu) and dp <= p_tol
            gpu_cols = f"{t_gpu:8.2f} {t_cpu / t_gpu:7.1f}x"
            tail = f"{p_gpu:7.3f} {ds:9.1e} {dp:6.3f}"
        else:
            gpu_cols = f"{'n/a':>8} {'n/a':>8}"
            tail = f"{'n/a':>7} {'n/a':>9} {'n/a':>6}"
        print(f"{n:>11} {d:>3} {t_cpu:8.2f} {gpu_cols} {s_cpu:12.6g} {p_cpu:7.3f} {tail}",
              flush=True)
    print("devices agree" if ok else "MISMATCH between CPU and CUDA beyond tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
