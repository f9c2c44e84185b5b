"""False-alarm rate of DatasetDrift on stable data (no drift by construction).

Windows are resampled from the car-loan reference and compared with a reference, so every
flag is a false alarm. Two null designs:

- ``holdout``: fit on a random half of the reference, draw windows (with replacement) from the
  other half: windows and reference are independent samples of one distribution, which is what
  the tests assume; flagged share per feature should be about alpha (less for discrete columns:
  KS with ties and the chi-square test are conservative).
- ``same``: fit on the whole reference and draw windows from it (the window is a bootstrap of
  the reference itself, so the tests are conservative: expect well under alpha).

Printed per method/test: share of windows where the raw p-value < alpha (per feature), where
the BH-adjusted p < alpha, the final verdict (significant after BH *and* effect >= floor), and
per window: any feature significant (raw / BH) and any feature drifted. Distances (PSI, JS,
Hellinger, Wasserstein) are shown against their thresholds.

    python bench/false_alarm.py [--windows 1000] [--size 5000] [--mode both]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

import _data  # noqa: F401  (sets sys.path)
from _data import car_loan
from detectors.drift import DatasetDrift
from detectors.verdict import VerdictPolicy, adjust_pvalues

ALPHAS = (0.01, 0.05, 0.10)


def run(mode: str, windows: int, size: int, seed: int) -> None:
    ref, _ = car_loan()
    rng = np.random.default_rng(seed)
    if mode == "holdout":
        idx = rng.permutation(len(ref))
        fit_df, pool = ref.iloc[idx[: len(ref) // 2]], ref.iloc[idx[len(ref) // 2:]]
    else:
        fit_df, pool = ref, ref
    policy = VerdictPolicy()
    dd = DatasetDrift(policy=policy).fit(fit_df)
    names = list(dd.features)
    raw_p = np.empty((windows, len(names)))
    effect = np.empty((windows, len(names)))
    distances: dict[tuple[str, str], list[float]] = defaultdict(list)
    verdict = np.zeros((windows, len(names)), dtype=bool)
    pool_values = pool.reset_index(drop=True)
    t0 = time.perf_counter()
    for w in range(windows):
        window = pool_values.iloc[rng.integers(0, len(pool_values), size)]
        report = dd.compare(dd.summarise(window))
        for r in report.scores:
            if r.p_value is not None:
                j = names.index(r.feature)
                raw_p[w, j], effect[w, j] = r.p_value, r.effect_size
            else:
                distances[(r.feature, r.method)].append(r.statistic)
        verdict[w] = [r.drifted for r in report.features]
    elapsed = time.perf_counter() - t0
    print(f"\n## mode={mode}: {windows} windows x {size} rows vs reference of {len(fit_df)} rows "
          f"({elapsed:.1f} s, {1e3 * elapsed / windows:.1f} ms/window incl. resampling)")
    print("effect floor", policy.effect_floor, "| correction", policy.correction, "| verdict alpha", policy.alpha)
    head = "feature                 test  " + "  ".join(f"raw<{a:<4} BH<{a:<4}" for a in ALPHAS) + "  verdict  mean_effect"
    print(head)
    print("-" * len(head))
    bh = {a: np.vstack([adjust_pvalues(row) for row in raw_p]) < a for a in ALPHAS}
    for j, name in enumerate(names):
        test = dd.features[name].method
        cells = "  ".join(f"{np.mean(raw_p[:, j] < a):8.3f} {np.mean(bh[a][:, j]):8.3f}" for a in ALPHAS)
        print(f"{name:<23} {test:<5} {cells}  {verdict[:, j].mean():7.3f}  {effect[:, j].mean():11.4f}")
    cells = "  ".join(f"{np.mean((raw_p < a).any(axis=1)):8.3f} {np.mean(bh[a].any(axis=1)):8.3f}" for a in ALPHAS)
    print(f"{'ANY FEATURE (per window)':<29} {cells}  {verdict.any(axis=1).mean():7.3f}")
    print("\ndistances (no p-value): share of windows >= threshold, mean / p99 value")
    print(f"{'feature':<23} {'method':<10} {'thresh':>6} {'flagged':>8} {'mean':>8} {'p99':>8}")
    for (name, method), vals in sorted(distances.items()):
        v = np.asarray(vals)
        thr = policy.threshold_for(method)
        print(f"{name:<23} {method:<10} {thr:6.2f} {np.mean(v >= thr):8.3f} {v.mean():8.4f} {np.quantile(v, 0.99):8.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--mode", choices=["holdout", "same", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for mode in (["holdout", "same"] if a.mode == "both" else [a.mode]):
        run(mode, a.windows, a.size, a.seed)


if __name__ == "__main__":
    main()
