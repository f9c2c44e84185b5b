"""CBPE benchmark: estimated vs realized ROC AUC per 5000-row chunk on the shipped datasets.

Run ``python bench/cbpe.py``. When the interpreter named by ``NANNYML_PYTHON`` exists (e.g. a venv
made with ``python -m venv /tmp/nannyml-venv && /tmp/nannyml-venv/bin/pip install nannyml``),
NannyML's CBPE runs on the same chunks in that interpreter and its estimates are shown alongside.
The last column is :func:`detectors.conditional.concept_vs_covariate` on the chunk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.cbpe import CBPE  # noqa: E402
from detectors.conditional import concept_vs_covariate  # noqa: E402
from detectors.performance import classification_metrics  # noqa: E402
from tests.support.data import data_file  # noqa: E402  (data/nannyml/ or $DRIFTWARDEN_DATA)

CHUNK = 5000
DATASETS = {
    "car_loan": {"reference": "synthetic_car_loan_reference.csv", "analysis": "synthetic_car_loan_analysis.csv",
                 "target": "synthetic_car_loan_analysis_target.csv", "label": "repaid",
                 "score": "y_pred_proba", "pred": "y_pred"},
    "employment_MA": {"reference": "employment_MA_reference.pq", "analysis": "employment_MA_analysis.pq",
                      "target": "employment_MA_analysis_target.pq", "label": "employed",
                      "score": "predicted_probability", "pred": "prediction"},
}

NANNYML_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd, nannyml as nml
cfg = json.loads(sys.argv[1])
def read(p):
    return pd.read_parquet(p) if p.endswith(".pq") else pd.read_csv(p)
out = {}
for name, d in cfg["datasets"].items():
    ref = read(d["reference"])
    ana = read(d["analysis"])
    ana = ana.iloc[: len(ana) // cfg["chunk"] * cfg["chunk"]]
    est = nml.CBPE(y_pred_proba=d["score"], y_pred=d["pred"], y_true=d["label"], metrics=["roc_auc"],
                   problem_type="classification_binary", chunk_size=cfg["chunk"])
    est.fit(ref)
    res = est.estimate(ana).filter(period="analysis").to_df()
    out[name] = [float(v) for v in res[("roc_auc", "value")]]
print(json.dumps(out))
"""


def load(cfg: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    def read(name: str) -> pd.DataFrame:
        path = data_file(name)
        return pd.read_parquet(path) if path.suffix == ".pq" else pd.read_csv(path)

    ref = read(cfg["reference"])
    ana = read(cfg["analysis"]).merge(read(cfg["target"]), on="id", how="left", validate="one_to_one")
    return ref, ana


def run_nannyml() -> dict[str, list[float]] | None:
    python = os.environ.get("NANNYML_PYTHON", "")
    if not python or not Path(python).exists():
        print("nannyml: not installed (set NANNYML_PYTHON to a python with nannyml)")
        return None
    cfg = {"chunk": CHUNK, "datasets": {
        name: {**d, **{k: str(data_file(d[k])) for k in ("reference", "analysis")}} for name, d in DATASETS.items()}}
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", NANNYML_SCRIPT, json.dumps(cfg)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"nannyml: failed ({proc.stderr.strip().splitlines()[-1:]})")
        return None
    print(f"nannyml: ran in {time.perf_counter() - t0:.1f}s (including import and data loading)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    nannyml = run_nannyml()
    for name, cfg in DATASETS.items():
        ref, ana = load(cfg)
        label, score, pred = cfg["label"], cfg["score"], cfg["pred"]
        t0 = time.perf_counter()
        est = CBPE(metrics=("roc_auc", "accuracy")).fit(ref[score].to_numpy(), ref[label].to_numpy().astype(int))
        q_ref = est.expected_errors(ref[score].to_numpy(), ref[pred].to_numpy().astype(int))
        fit_s = time.perf_counter() - t0
        nml_vals = None if nannyml is None else nannyml.get(name)
        print(f"\n{name}: reference {len(ref)} rows, analysis {len(ana)} rows, chunk {CHUNK}, "
              f"calibrated={est.state()['calibrators'][0] is not None}, fit {fit_s * 1e3:.0f} ms")
        head = f"{'chunk':>5} {'rows':>13} {'realized':>9} {'estimated':>9} {'abs_err':>8}"
        if nml_vals is not None:
            head += f" {'nannyml':>9} {'nml_err':>8}"
        print(head + f" {'exp_err':>8} {'real_err':>8}  kind")
        errs, nml_errs, est_s = [], [], 0.0
        for c, start in enumerate(range(0, len(ana) - CHUNK + 1, CHUNK)):
            w = ana.iloc[start:start + CHUNK]
            s, yp, y = w[score].to_numpy(), w[pred].to_numpy().astype(int), w[label].to_numpy().astype(int)
            t0 = time.perf_counter()
            auc_est = est.estimate(s, yp)["roc_auc"]
            est_s += time.perf_counter() - t0
            auc_real = classification_metrics(y, yp, score=s)["roc_auc"]
            verdict = concept_vs_covariate(q_ref, est.expected_errors(s, yp), (y != yp).astype(int))
            errs.append(abs(auc_est - auc_real))
            line = f"{c:>5} {f'{start}-{start + CHUNK - 1}':>13} {auc_real:9.4f} {auc_est:9.4f} {errs[-1]:8.4f}"
            if nml_vals is not None:
                nml_errs.append(abs(nml_vals[c] - auc_real))
                line += f" {nml_vals[c]:9.4f} {nml_errs[-1]:8.4f}"
            print(line + f" {verdict.expected_error_window:8.4f} {verdict.realized_error_window:8.4f}  {verdict.kind}")
        summary = f"{name}: driftwarden CBPE ROC AUC MAE {np.mean(errs):.4f} (max {np.max(errs):.4f})"
        if nml_errs:
            summary += f"; nannyml CBPE MAE {np.mean(nml_errs):.4f} (max {np.max(nml_errs):.4f})"
        print(summary + f"; estimate {est_s / len(errs) * 1e3:.1f} ms/chunk")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
