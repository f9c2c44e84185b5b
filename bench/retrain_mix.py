"""Which training data gives the better model after drift: ROC AUC on the post-drift holdout of

(a) the served model (its own predictions, as the traffic store has them),
(b) the trainer on the reference alone,
(c) the trainer on recent labelled traffic alone,
(d) the trainer on the representative mix (agent.retrain.dataset: the reference importance-
    weighted towards today plus recent traffic, the analysis' segments covered; for concept drift
    the reference's rows of the drifted segment left out, as the analysis' stale_segments say),

for planted drifts of the car-loan data (tests/support/planted.py: the served model predicts on
the drifted inputs; the analysis' segment is the planted one). Recent = the oldest 70% of the
drifted traffic, holdout = the newest 30% (time order). Paired-bootstrap 95% intervals
(agent.retrain.gates.paired_bootstrap, 1,000 resamples) of (d) minus each other row. The same
torch trainer (agent.retrain.trainer.train, seed 0, CPU) and gates for (b), (c), (d).

    python bench/retrain_mix.py                  # 3 scenarios (~4 minutes on 2 cores)
    python bench/retrain_mix.py --scenarios underrepresented_segment
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from agent.retrain.dataset import DatasetSpec, build_dataset, load_dataset  # noqa: E402
from agent.retrain.gates import paired_bootstrap  # noqa: E402
from agent.retrain.tabular import TabularSchema  # noqa: E402
from agent.retrain.trainer import TrainConfig, train  # noqa: E402
from detectors.performance import pair_auc  # noqa: E402
from tests.support.planted import plant  # noqa: E402


def auc_stat(y: np.ndarray, score: np.ndarray):  # noqa: ANN201
    pos = (y == 1).astype(float)

    def stat(w: np.ndarray) -> np.ndarray:
        return pair_auc(score, w * pos, w * (1 - pos))

    return stat


def fit(frame: pd.DataFrame, holdout: pd.DataFrame, schema: TabularSchema) -> tuple[np.ndarray, str]:
    res = train(frame, holdout, schema, TrainConfig(seed=0))
    if res.model is None:
        return np.full(len(holdout), np.nan), f"stopped at {res.report.failed_gate}"
    return res.model.predict(holdout), res.report.verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["underrepresented_segment", "covariate_shift", "concept_drift"])
    ap.add_argument("--rows", type=int, default=5_000, help="drifted traffic rows (recent + holdout; the planted segment is sampled without replacement up to ~5,500)")
    args = ap.parse_args()
    print(f"{'scenario':26s} {'row':36s} {'ROC AUC':>8s} {'(d) minus this, 95% CI':>26s}  trainer verdict")
    for name in args.scenarios:
        t0 = time.perf_counter()
        sc = plant(name, "car_loan", seed=0, n_current=args.rows)
        c = sc.columns
        cur = sc.current.assign(timestamp=np.arange(len(sc.current), dtype=float))
        ref = sc.reference.assign(timestamp=-1.0)
        cut = int(0.7 * len(cur))
        recent, holdout = cur.iloc[:cut], cur.iloc[cut:]
        numeric = [f for f in c["features"] if f not in c["categorical"]]
        schema = TabularSchema("binary", c["target"], numeric=tuple(numeric), categorical=tuple(c["categorical"]),
                               id_column="id", served_column="y_score")
        segment = f"{sc.segment[0]}={sc.segment[1]}" if sc.segment else None
        with tempfile.TemporaryDirectory() as tmp:
            spec = DatasetSpec(target=c["target"], features=tuple(c["features"]), categorical=tuple(c["categorical"]),
                               task="binary", id_column="id", time_column="timestamp", prediction_column="y_pred",
                               score_column="y_score", segments=(segment,) if segment else (), holdout_share=0.01,
                               stale_segments=(segment,) if name == "concept_drift" else (),
                               reference_ids=False, seed=0)
            manifest = build_dataset(ref, recent, spec, Path(tmp))
            mix = load_dataset(Path(tmp)).train
        y = holdout[c["target"]].to_numpy().astype(int)
        rows = {"(a) served model": (holdout["y_score"].to_numpy(), "-")}
        rows["(b) reference alone"] = fit(ref, holdout, schema)
        rows["(c) recent traffic alone"] = fit(recent, holdout, schema)
        mix_schema = TabularSchema("binary", c["target"], numeric=tuple(numeric), categorical=tuple(c["categorical"]),
                                   id_column="id", served_column="y_score", weight_column="__weight__")
        rows["(d) representative mix"] = fit(mix, holdout.assign(__weight__=1.0), mix_schema)
        d = auc_stat(y, rows["(d) representative mix"][0])
        for label, (score, verdict) in rows.items():
            auc = float(auc_stat(y, score)(np.ones((1, len(y))))[0])
            ci = ""
            if not label.startswith("(d)") and np.isfinite(score).all():
                other = auc_stat(y, score)
                iv = paired_bootstrap(lambda w: d(w) - other(w), len(y), n_resamples=1000, seed=0)
                ci = f"{float(d(np.ones((1, len(y))))[0]) - auc:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]"
            print(f"{name:26s} {label:36s} {auc:8.4f} {ci:>26s}  {verdict}")
        w = manifest.weights
        print(f"{'':26s} mix: ESS share {getattr(w, 'ess_share', float('nan')) if w else float('nan'):.2f}, "
              f"fallback {manifest.fallback_reason if manifest.fallback else 'no'}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
