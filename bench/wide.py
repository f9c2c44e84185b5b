"""Wide data: drift of 1,000 float32 columns, 3,000,000 reference x 300,000 current rows.

Parquet files are generated once (cached in ``--data-dir``). Columns are read in chunks with
pyarrow (``ParquetFile.read(columns=chunk)``); per column, reference quantile edges are fitted
(``NumericBins``; on a strided subsample of at most ``--edge-sample`` values by default, since
edges only need to be fixed, not exact quantiles: the reference *counts* use every row), both
sides are summarised into bin counts, and only those counts are kept, so memory follows
features x bins (plus one chunk of columns in flight), not rows. KS is the binned KS
(``ks_bins``: ``d_binned <= D <= d_binned + bound``), effect size the binned Wasserstein in
reference sds, verdicts via ``decide`` (BH over all columns + effect floor).
``--exact-edges`` fits ``FeatureDrift(sample_cap=0)`` on the full column instead (slower).

The first ``--shifted`` columns are shifted by 0.5 sd and the next 5 by 0.01 sd (significant
in 300k rows, below the effect floor): expected drifted = ``--shifted``.

Also runs evidently's DataDriftPreset (num_method="ks") and driftwarden on a
100,000 x 100 slice side by side.

    python bench/wide.py --rows 300000 --cols 100          # small run
    python bench/wide.py                                    # full: 3M x 1000 vs 300k x 1000
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import _data  # noqa: F401  (sets sys.path)
from detectors.binning import NumericBins
from detectors.drift import FeatureDrift
from detectors.result import DriftResult
from detectors.univariate import ks_bins, wasserstein_bins
from detectors.verdict import decide

ROW_GROUP = 100_000


def _col_params(j: int) -> tuple[float, float]:
    return float(j % 7), 1.0 + (j % 5)


def generate(path: Path, rows: int, cols: int, seed: int, shifted: int) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    names = [f"f{j:04d}" for j in range(cols)]
    schema = pa.schema([(n, pa.float32()) for n in names])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema, compression="NONE") as w:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            arrays = []
            for j in range(cols):
                loc, scale = _col_params(j)
                shift = 0.5 if j < shifted else 0.01 if j < shifted + 5 else 0.0
                x = rng.standard_normal(n, dtype=np.float32)
                arrays.append(pa.array(((x + np.float32(shift)) * np.float32(scale) + np.float32(loc))))
            w.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=ROW_GROUP)
    os.replace(tmp, path)


def _chunk(args: tuple[str, str, list[str], int, int, bool]) -> list[tuple]:
    ref_path, cur_path, cols, n_bins, edge_sample, exact = args
    ref_tbl = pq.ParquetFile(ref_path).read(columns=cols)
    cur_tbl = pq.ParquetFile(cur_path).read(columns=cols)
    out = []
    for c in cols:
        ref = ref_tbl.column(c).to_numpy()
        cur = cur_tbl.column(c).to_numpy()
        if exact:
            fd = FeatureDrift(c, "numeric", n_bins=n_bins, sample_cap=0).fit(ref)
            r, _ = fd.compare(fd.summarise(cur))
            out.append((c, r.statistic, r.p_value, r.effect_size, 0.0))
            continue
        binner = NumericBins(n_bins).fit(ref[:: max(1, ref.size // edge_sample)])
        rb, cb = binner.summarise(ref), binner.summarise(cur)
        r64 = ref.astype(np.float64)
        low, high, scale = float(np.nanmin(r64)), float(np.nanmax(r64)), float(np.nanstd(r64))
        d, p, bound = ks_bins(rb, cb)
        out.append((c, d, p, wasserstein_bins(rb, cb, low, high, scale), bound))
    del ref_tbl, cur_tbl
    return out


def _maxrss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def run_wide(ref_path: Path, cur_path: Path, chunk: int, workers: int, n_bins: int, edge_sample: int,
             exact: bool) -> None:
    names = pq.ParquetFile(ref_path).schema_arrow.names
    n_ref, n_cur = pq.ParquetFile(ref_path).metadata.num_rows, pq.ParquetFile(cur_path).metadata.num_rows
    jobs = [(str(ref_path), str(cur_path), names[i: i + chunk], n_bins, edge_sample, exact)
            for i in range(0, len(names), chunk)]
    t = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_chunk, jobs))
    else:
        parts = [_chunk(j) for j in jobs]
    rows = [r for part in parts for r in part]
    results = decide([DriftResult(c, "ks", d, p, w, False) for c, d, p, w, _ in rows])
    wall = time.perf_counter() - t
    drifted = [r.feature for r in results if r.drifted]
    significant = sum(r.p_value < 0.05 for r in results)  # type: ignore[operator]
    print(f"\n## wide: reference {n_ref:,} x {len(names)}, current {n_cur:,} x {len(names)} (float32), "
          f"chunk={chunk} columns, workers={workers}, n_bins={n_bins}, edges={'full column' if exact else f'<= {edge_sample:,} sampled rows'}")
    print(f"wall time          {wall:8.1f} s   ({1e3 * wall / len(names):.1f} ms/column)")
    print(f"peak RSS           {max(_maxrss_mib(resource.RUSAGE_SELF), _maxrss_mib(resource.RUSAGE_CHILDREN)):8.0f} MiB "
          f"(largest single process; main {_maxrss_mib(resource.RUSAGE_SELF):.0f}, worst worker "
          f"{_maxrss_mib(resource.RUSAGE_CHILDREN):.0f}; with {workers} workers the sum is at most {workers}x the worker peak + main)")
    print(f"drifted columns    {len(drifted)}  (first: {drifted[:12]})")
    print(f"significant (BH)   {significant}  (incl. the 0.01-sd columns held back by the effect floor)")
    print(f"max KS bin bound   {max(r[4] for r in rows):.4f}")


def run_evidently_slice(ref_path: Path, cur_path: Path, rows: int, cols: int) -> None:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from detectors.drift import DatasetDrift

    names = pq.ParquetFile(ref_path).schema_arrow.names[:cols]
    ref = pq.ParquetFile(ref_path).read(columns=names).slice(0, rows).to_pandas()
    cur = pq.ParquetFile(cur_path).read(columns=names).slice(0, rows).to_pandas()
    Report([DataDriftPreset(num_method="ks")]).run(cur.iloc[:500], ref.iloc[:500])  # warm-up
    t = time.perf_counter()
    snap = Report([DataDriftPreset(num_method="ks")]).run(cur, ref)
    ev_s = time.perf_counter() - t
    ev_drifted = sum(1 for m in snap.dict()["metrics"] if m["config"].get("type", "").endswith("ValueDrift")
                     and float(m["value"]) < 0.05)
    t = time.perf_counter()
    dd = DatasetDrift().fit(ref)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    rep = dd.compare(dd.summarise(cur))
    dw_s = time.perf_counter() - t
    print(f"\n## side by side on a {len(ref):,} x {cols} reference and {len(cur):,} x {cols} current slice")
    print(f"{'engine':<34} {'time s':>8} {'flagged':>8}")
    print(f"{'evidently DataDriftPreset(ks)':<34} {ev_s:8.2f} {ev_drifted:>8}   (p < 0.05, no correction, no effect floor)")
    print(f"{'driftwarden fit (once per ref)':<34} {fit_s:8.2f}")
    print(f"{'driftwarden summarise+compare':<34} {dw_s:8.2f} {sum(r.drifted for r in rep.features):>8}   (BH + effect floor)")
    print(f"speed-up per window {ev_s / dw_s:.0f}x; with fit included {ev_s / (dw_s + fit_s):.0f}x")
    del pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3_000_000, help="reference rows")
    ap.add_argument("--cur-rows", type=int, default=None, help="current rows (default rows / 10)")
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--shifted", type=int, default=10)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/driftwarden_wide"))
    ap.add_argument("--chunk", type=int, default=25, help="columns read per chunk")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--n-bins", type=int, default=20)
    ap.add_argument("--edge-sample", type=int, default=300_000)
    ap.add_argument("--exact-edges", action="store_true")
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--evidently-rows", type=int, default=100_000)
    ap.add_argument("--evidently-cols", type=int, default=100)
    a = ap.parse_args()
    cur_rows = a.cur_rows or a.rows // 10
    a.data_dir.mkdir(parents=True, exist_ok=True)
    ref_path = a.data_dir / f"ref_{a.rows}x{a.cols}.parquet"
    cur_path = a.data_dir / f"cur_{cur_rows}x{a.cols}_s{a.shifted}.parquet"
    t = time.perf_counter()
    generate(ref_path, a.rows, a.cols, 1, 0)
    generate(cur_path, cur_rows, a.cols, 2, a.shifted)
    print(f"data ready in {time.perf_counter() - t:.1f} s: {ref_path} ({ref_path.stat().st_size / 2**30:.2f} GiB), "
          f"{cur_path} ({cur_path.stat().st_size / 2**30:.2f} GiB)")
    run_wide(ref_path, cur_path, a.chunk, a.workers, a.n_bins, a.edge_sample, a.exact_edges)
    if not a.skip_evidently:
        run_evidently_slice(ref_path, cur_path, min(a.evidently_rows, a.rows, cur_rows), min(a.evidently_cols, a.cols))


if __name__ == "__main__":
    main()
