"""``driftwarden check`` vs evidently's DataDriftPreset, whole process against whole process.

Writes a reference CSV (``--ref-rows``, default 100,000) and a current CSV (``--rows``, default
1,000,000) of 7 mixed columns (4 numeric, 3 categorical; ``income`` and ``region`` drift,
``debt_ratio`` moves trivially, 1% of it is empty), then runs, each as its own subprocess and
including interpreter start, imports and reading both files:

* ``driftwarden check --reference R --current C --format json`` (the installed console script);
* what a user of evidently 0.7 writes: read both CSVs with pandas, then
  ``Report([DataDriftPreset()]).run(current, reference)`` (evidently's default tests;
  ``--same-tests`` forces KS / chi-square as ``bench/drift.py`` does), and print the drifted columns;
* ``python -c pass``: the interpreter alone, for scale.

Wall time is measured around each process; user+sys CPU and peak RSS come from ``os.wait4``
(the child's own rusage). Runs alternate between the tools; the table shows the fastest run of
each and every run's wall time. The load average is printed before and after, since the 2 cores
may be shared.

    python bench/check_process.py                    # 1,000,000-row current, 3 runs each
    python bench/check_process.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EVIDENTLY_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

reference = pd.read_csv(sys.argv[1])
current = pd.read_csv(sys.argv[2])
preset = DataDriftPreset(num_method="ks", cat_method="chisquare") if sys.argv[3] == "same" else DataDriftPreset()
snapshot = Report([preset]).run(current, reference)
drifted = {}
for m in snapshot.dict()["metrics"]:
    cfg = m["config"]
    if cfg.get("type", "").endswith("ValueDrift"):
        value = float(m["value"])
        # distances (the defaults past 1,000 rows: Wasserstein, Jensen-Shannon) drift at or above
        # the threshold, p-values (ks, chisquare, ...) below it
        method = cfg["method"].lower()
        distance = any(k in method for k in ("distance", "wasserstein", "jensen", "psi", "kl_div", "kullback",
                                             "hellinger", "energy"))
        drifted[cfg["column"]] = value >= cfg["threshold"] if distance else value < cfg["threshold"]
print(json.dumps({"drifted": sorted(k for k, v in drifted.items() if v), "columns": len(drifted)}))
"""


def generate(directory: Path, ref_rows: int, cur_rows: int, seed: int = 7) -> tuple[Path, Path]:
    """Reference and current CSVs (cached in ``directory`` by size)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ref_path = directory / f"check_reference_{ref_rows}.csv"
    cur_path = directory / f"check_current_{cur_rows}.csv"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def table(n: int, drift: bool) -> pa.Table:
        income = rng.lognormal(10.5, 0.5, n) * (0.88 if drift else 1.0)
        debt = rng.beta(2.0, 5.0, n) + (0.002 if drift else 0.0)  # trivial shift: below the effect floor
        debt[rng.random(n) < 0.01] = np.nan
        region_p = [0.30, 0.25, 0.20, 0.12, 0.08, 0.05] if not drift else [0.18, 0.25, 0.18, 0.17, 0.12, 0.10]
        cols = {
            "income": np.round(income, 2),
            "age": rng.integers(18, 76, n),
            "debt_ratio": np.round(debt, 4),
            "loan_amount": np.round(rng.gamma(4.0, 5000.0, n), 2),
            "region": rng.choice(["north", "south", "east", "west", "centre", "islands"], n, p=region_p),
            "employment": rng.choice(["employed", "self_employed", "unemployed", "retired"], n,
                                     p=[0.62, 0.18, 0.08, 0.12]),
            "channel": rng.choice(["web", "branch", "partner"], n, p=[0.55, 0.30, 0.15]),
        }
        return pa.table(cols)

    for path, n, drift in ((ref_path, ref_rows, False), (cur_path, cur_rows, True)):
        tmp = path.with_suffix(".tmp")
        pacsv.write_csv(table(n, drift), tmp)
        tmp.replace(path)
    return ref_path, cur_path


def driftwarden_command() -> list[str]:
    """The console script next to this interpreter (pyenv's shim would add a bash start)."""
    script = Path(sys.executable).parent / "driftwarden"
    if script.exists():
        return [str(script)]
    found = shutil.which("driftwarden")
    return [found] if found else [sys.executable, "-m", "agent.cli"]


def run_process(cmd: list[str]) -> dict:
    """Run ``cmd`` to completion: wall s, user+sys s, peak RSS MiB, exit status, stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss / 1024, "rc": p.returncode,
            "stdout": stdout, "stderr": stderr}


def drifted_columns(name: str, res: dict) -> str:
    try:
        d = json.loads(res["stdout"])
    except ValueError:
        return f"(no JSON; rc {res['rc']}: {res['stderr'].strip().splitlines()[-1:] })"
    if name == "driftwarden":
        return ",".join(sorted(k for k, v in d["features"].items() if v["drifted"])) + f" (of {len(d['features'])})"
    return ",".join(d["drifted"]) + f" (of {d['columns']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the current CSV")
    ap.add_argument("--ref-rows", type=int, default=100_000, help="rows of the reference CSV")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "driftwarden-check-bench",
                    help="where the CSVs are written (and reused)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (alternating)")
    ap.add_argument("--same-tests", action="store_true", help="force evidently to KS / chi-square")
    a = ap.parse_args()

    t = time.perf_counter()
    ref, cur = generate(a.dir, a.ref_rows, a.rows)
    print(f"data: {ref} ({ref.stat().st_size / 2**20:.1f} MiB), {cur} ({cur.stat().st_size / 2**20:.1f} MiB) "
          f"[{time.perf_counter() - t:.1f} s]", flush=True)

    with tempfile.NamedTemporaryFile("w", suffix="_evidently_check.py", delete=False) as f:
        f.write(EVIDENTLY_SCRIPT)
        ev_script = f.name
    commands = {
        "driftwarden": driftwarden_command() + ["check", "--reference", str(ref), "--current", str(cur),
                                                "--format", "json"],
        "evidently": [sys.executable, ev_script, str(ref), str(cur), "same" if a.same_tests else "default"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {k: [] for k in commands}
    try:
        for i in range(a.repeat):
            for name, cmd in commands.items():
                res = run_process(cmd)
                runs[name].append(res)
                print(f"run {i + 1} {name}: {res['wall']:.2f} s, rc {res['rc']}", flush=True)
    finally:
        os.unlink(ev_script)
    load_after = os.getloadavg()

    best = {k: min(v, key=lambda r: r["wall"]) for k, v in runs.items()}
    print(f"\ncurrent {a.rows:,} rows, reference {a.ref_rows:,} rows, 7 columns; evidently "
          f"{'KS / chi-square' if a.same_tests else 'default tests'}; {a.repeat} run(s) each, best shown")
    print(f"{'process':<15} {'wall s':>7} {'cpu s':>7} {'peak RSS MiB':>12} {'exit':>4}  {'all walls s':<18} drifted")
    for name, r in best.items():
        walls = " ".join(f"{x['wall']:.2f}" for x in runs[name])
        cols = drifted_columns(name, r) if name != "python -c pass" else "-"
        print(f"{name:<15} {r['wall']:7.2f} {r['cpu']:7.2f} {r['rss']:12.0f} {r['rc']:>4}  {walls:<18} {cols}")
    dw, ev = best["driftwarden"], best["evidently"]
    print(f"ratio evidently / driftwarden: wall {ev['wall'] / dw['wall']:.1f}x, cpu {ev['cpu'] / dw['cpu']:.1f}x, "
          f"peak RSS {ev['rss'] / dw['rss']:.1f}x")
    print("load average before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f} ({} CPUs)".format(
        *load_before, *load_after, os.cpu_count()))
    for name, r in best.items():
        if r["rc"] not in (0, 1):
            print(f"\n{name} failed (rc {r['rc']}):\n{r['stderr'][-2000:]}", file=sys.stderr)


if __name__ == "__main__":
    main()
