"""driftwarden DatasetDrift vs evidently DataDriftPreset on the same windows, side by side.

Windows: car loan (5k-row windows of the analysis file vs the 50k reference), employment
(5k-row windows of the analysis .pq vs its reference), and one 1,000,000-row window resampled
from the car-loan analysis file. Each (engine, data set) runs in its own spawned process so peak
RSS (ru_maxrss) is per engine; "delta" is peak minus RSS after imports and data loading.

Same test per column: evidently is forced to ``num_method="ks"`` and ``cat_method="chisquare"``.
KS is the same test in both (scipy ks_2samp; driftwarden bins past 100k window values). For
categorical columns evidently's "chisquare" is a goodness-of-fit test against the reference
proportions, driftwarden's chi2 a 2 x k homogeneity test: close, not identical. Agreement is
reported against driftwarden's raw p < 0.05 (same decision rule as evidently) and against its
final verdict (BH across features + effect floor), which is designed to disagree on trivial shifts.

driftwarden time per window = summarise + compare (the reference is fitted once per model and
reused); fit time is shown separately. evidently re-reads the reference on every run.

    python bench/drift.py --quick        # 3 windows per set + the 1M window
    python bench/drift.py                # 10 windows per set + the 1M window
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import warnings

import numpy as np
import pandas as pd

import _data
from _data import car_loan, employment, peak_rss_mib, rss_mib

ALPHA = 0.05


def _windows(name: str, n_windows: int, size: int) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    if name == "car_loan":
        ref, ana = car_loan()
    elif name == "employment":
        ref, ana = employment()
    elif name == "car_loan_1M":
        ref, ana = car_loan()
        return ref, [ana.sample(1_000_000, replace=True, random_state=7).reset_index(drop=True)]
    else:
        raise ValueError(name)
    starts = np.linspace(0, len(ana) - size, n_windows).astype(int)
    return ref, [ana.iloc[s: s + size].reset_index(drop=True) for s in starts]


def _run_driftwarden(ref: pd.DataFrame, windows: list[pd.DataFrame]) -> dict:
    from detectors.drift import DatasetDrift

    t = time.perf_counter()
    dd = DatasetDrift().fit(ref)
    fit_s = time.perf_counter() - t
    dd.compare(dd.summarise(windows[0].iloc[:200]))  # warm-up, as evidently gets one (lazy imports, caches)
    times, verdicts = [], []
    for w in windows:
        t = time.perf_counter()
        report = dd.compare(dd.summarise(w))
        times.append(time.perf_counter() - t)
        raw = {r.feature: r.p_value for r in report.scores if r.p_value is not None}
        verdicts.append({r.feature: {"method": r.method, "raw_p": raw[r.feature], "drifted": r.drifted}
                         for r in report.features})
    return {"fit_s": fit_s, "times": times, "verdicts": verdicts}


def _run_evidently(ref: pd.DataFrame, windows: list[pd.DataFrame]) -> dict:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def report() -> Report:
        return Report([DataDriftPreset(num_method="ks", cat_method="chisquare")])

    report().run(windows[0].iloc[:200], ref.iloc[:2000])  # warm-up (lazy imports, registries)
    times, verdicts = [], []
    for w in windows:
        t = time.perf_counter()
        snap = report().run(w, ref)
        times.append(time.perf_counter() - t)
        v = {}
        for m in snap.dict()["metrics"]:
            cfg = m["config"]
            if cfg.get("type", "").endswith("ValueDrift"):
                v[cfg["column"]] = {"method": cfg["method"], "p": float(m["value"]),
                                    "drifted": float(m["value"]) < cfg["threshold"]}
        verdicts.append(v)
    return {"fit_s": 0.0, "times": times, "verdicts": verdicts}


def _worker(engine: str, name: str, n_windows: int, size: int, q: mp.Queue) -> None:
    warnings.filterwarnings("ignore")
    if engine == "evidently":
        import evidently.presets  # noqa: F401  (import cost outside the measured delta)
    else:
        import detectors.drift  # noqa: F401
    ref, windows = _windows(name, n_windows, size)
    base = rss_mib()
    out = (_run_evidently if engine == "evidently" else _run_driftwarden)(ref, windows)
    out.update(peak_mib=peak_rss_mib(), base_mib=base, rows=len(windows[0]), n_windows=len(windows),
               n_features=ref.shape[1])
    q.put(out)


def measure(engine: str, name: str, n_windows: int, size: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(engine, name, n_windows, size, q))
    p.start()
    out = q.get()
    p.join()
    return out


def agreement(dw: dict, ev: dict) -> dict[str, tuple[int, int, int]]:
    """Per test: (windows x features compared, agree with raw p < alpha, agree with verdict)."""
    acc: dict[str, list[int]] = {}
    for a, b in zip(dw["verdicts"], ev["verdicts"]):
        for feat, r in a.items():
            if feat not in b:
                continue
            c = acc.setdefault(f"{r['method']}~{b[feat]['method']}", [0, 0, 0])
            c[0] += 1
            c[1] += (r["raw_p"] < ALPHA) == b[feat]["drifted"]
            c[2] += r["drifted"] == b[feat]["drifted"]
    return {k: tuple(v) for k, v in acc.items()}  # type: ignore[misc]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 windows per data set")
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--no-large", action="store_true", help="skip the 1,000,000-row window")
    a = ap.parse_args()
    n = 3 if a.quick else a.windows
    sets = [("car_loan", n), ("employment", n)] + ([] if a.no_large else [("car_loan_1M", 1)])
    rows = []
    agree_rows = []
    for name, k in sets:
        dw = measure("driftwarden", name, k, a.size)
        ev = measure("evidently", name, k, a.size)
        rows.append((name, dw, ev))
        for test, (m, raw, verdict) in agreement(dw, ev).items():
            agree_rows.append((name, test, m, raw, verdict))
        print(f"done {name}", flush=True)

    print(f"\n{'data set':<12} {'rows/win':>9} {'feat':>4} {'win':>4} | {'dw fit s':>8} {'dw ms/win':>9} "
          f"{'ev ms/win':>10} {'speed-up':>8} | {'dw peak MiB':>11} {'(delta)':>8} {'ev peak MiB':>11} {'(delta)':>8}")
    for name, dw, ev in rows:
        dms, ems = 1e3 * np.median(dw["times"]), 1e3 * np.median(ev["times"])
        print(f"{name:<12} {dw['rows']:>9,} {dw['n_features']:>4} {dw['n_windows']:>4} | {dw['fit_s']:8.2f} "
              f"{dms:9.1f} {ems:10.1f} {ems / dms:7.0f}x | {dw['peak_mib']:11.0f} {dw['peak_mib'] - dw['base_mib']:8.0f} "
              f"{ev['peak_mib']:11.0f} {ev['peak_mib'] - ev['base_mib']:8.0f}")
    print("(ms/win: median over windows; speed-up excludes driftwarden's one-off fit: with fit in, "
          "divide evidently's time by dw fit + dw ms/win)")
    print(f"\n{'data set':<12} {'dw test~ev test':<16} {'cells':>6} {'agree raw p<0.05':>17} {'agree verdict':>14}")
    tot = [0, 0, 0]
    for name, test, m, raw, verdict in agree_rows:
        print(f"{name:<12} {test:<16} {m:>6} {raw / m:17.1%} {verdict / m:14.1%}")
        if test.startswith("ks"):
            tot = [tot[0] + m, tot[1] + raw, tot[2] + verdict]
    if tot[0]:
        print(f"{'ALL':<12} {'ks~ks':<16} {tot[0]:>6} {tot[1] / tot[0]:17.1%} {tot[2] / tot[0]:14.1%}")


if __name__ == "__main__":
    main()
