"""Label-noise suspects: driftwarden's find_label_noise vs cleanlab's find_label_issues, side by side.

Both read the same out-of-fold probabilities of the same current rows
(:func:`detectors.rca.noise.out_of_fold`: gradient boosting fitted on the reference and the other
folds of the current rows), so the table compares the rules, not the models. cleanlab runs
``filter_by="prune_by_noise_rate"`` (its default, the rule driftwarden implements) and
``"confident_learning"``; cleanlab has no "explained by today" step.

Data: the nannyml car-loan reference (50,000 rows; target ``repaid``) and employment (ACS
Massachusetts, 68,785 rows; target ``employed``). Per seed the file's rows are shuffled into a
reference (car loan 25,000, employment 40,000) and a disjoint current split (10,000 / 12,000).

(1) Planted noise: in one segment of the current rows (car loan ``salary_range == "20K - 40K €"``,
    employment ``SCHL == "21"``) 10 % of the labels are flipped at random. Precision and recall
    are measured inside the segment (suspects in the segment that were flipped / suspects in the
    segment; flipped rows found / flipped rows): outside it there is nothing planted to find, so a
    suspect there is a model mistake or the data's own noise, shown as "P all" (precision over every
    suspect) and "out" (suspects outside the segment). Two label sets:
      - ``clean``: the label is the monitored model's own decision (nannyml's ``y_pred`` /
        ``prediction`` columns), a realistic function of the features with no label noise of its
        own, so every contradicted label is a planted one;
      - ``raw``: the observed target. These labels carry their own noise: on car loan about 2.4 %
        of rows are wrong even where the model is 98 % sure (an error floor of the generator),
        so ~0.82 is the best precision any rule can reach against the planted ids; "floor" is the
        number of in-segment suspects on the same rows *without* planting (the data's own).
(2) Consistent change: all labels of a segment are flipped (car loan ``salary_range == "60K+ €"``,
    employment ``MAR == "3"``), clean labels, in a current window of 2,500 rows (much smaller than
    the reference, as in production) and of part (1)'s size. Reported: changed rows, how many the
    joint model flags, how many of those land in "explained by today" vs stay suspects, and how
    many unchanged rows are explained; cleanlab calls every flagged one an issue. When the window
    holds about as many rows of the segment as the reference, the joint model learns the change
    itself and flags few (neither noise nor explained).
(3) Scale: 200,000 reference + 200,000 current rows x 10 features (6 numeric with NaNs, 4
    categorical), synthetic binary target; wall time of one find_label_noise call and peak RSS.

    python bench/label_noise.py               # 3 seeds (~3 minutes on 2 idle cores)
    python bench/label_noise.py --quick       # 1 seed, no scale part
    python bench/label_noise.py --threads 1   # one OpenMP thread per fit: where other processes
                                              # share the cores (HistGradientBoosting's barriers
                                              # stall on descheduled threads, 5-20x slower)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._data import CAR_FEATURES, EMPLOYMENT_FEATURES, data_file, peak_rss_mib  # noqa: E402
from detectors.rca.noise import find_label_noise, flag_label_noise, out_of_fold  # noqa: E402

NOISE = 0.10
THREADS: int | None = None  # --threads


@dataclass(frozen=True)
class Dataset:
    name: str
    frame: pd.DataFrame
    features: list[str]
    raw: str          # observed target
    clean: str        # the monitored model's decision
    segment: tuple[str, str]
    consistent: tuple[str, str]
    n_reference: int
    n_current: int


def datasets() -> list[Dataset]:
    car = pd.read_csv(data_file("synthetic_car_loan_reference.csv"))
    car["repaid"] = car["repaid"].astype(int)
    emp = pd.read_parquet(data_file("employment_MA_reference.pq"))
    return [Dataset("car_loan", car, CAR_FEATURES, "repaid", "y_pred", ("salary_range", "20K - 40K €"),
                    ("salary_range", "60K+ €"), 25_000, 10_000),
            Dataset("employment", emp, EMPLOYMENT_FEATURES, "employed", "prediction", ("SCHL", "21"),
                    ("MAR", "3"), 40_000, 12_000)]


def split(ds: Dataset, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.random.Generator]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ds.frame))
    ref = ds.frame.iloc[perm[: ds.n_reference]].reset_index(drop=True)
    cur = ds.frame.iloc[perm[ds.n_reference: ds.n_reference + ds.n_current]].reset_index(drop=True)
    return ref, cur, rng


def in_segment(frame: pd.DataFrame, segment: tuple[str, str]) -> np.ndarray:
    return (frame[segment[0]].astype(str) == segment[1]).to_numpy()


def scores(flagged: np.ndarray, planted: np.ndarray, segment: np.ndarray) -> tuple[float, float, float, int]:
    tp = int((flagged & planted).sum())
    seg = int((flagged & segment).sum())
    return (tp / seg if seg else float("nan"), tp / int(planted.sum()),
            tp / int(flagged.sum()) if flagged.any() else float("nan"), int((flagged & ~segment).sum()))


def cleanlab_masks(labels: np.ndarray, proba: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    from cleanlab.filter import find_label_issues

    masks, secs = {}, {}
    for rule in ("prune_by_noise_rate", "confident_learning"):
        t0 = time.perf_counter()
        masks[rule] = np.asarray(find_label_issues(labels, proba, filter_by=rule), dtype=bool)
        secs[rule] = time.perf_counter() - t0
    return masks, secs


def planted(ds: Dataset, kind: str, seed: int) -> str:
    labels = ds.clean if kind == "clean" else ds.raw
    ref, cur, rng = split(ds, seed)
    ref = ref.assign(label=ref[labels].astype(int))
    cur = cur.assign(label=cur[labels].astype(int))
    seg = in_segment(cur, ds.segment)
    flip = seg & (rng.random(len(cur)) < NOISE)
    noisy = cur.copy()
    noisy.loc[flip, "label"] = 1 - noisy.loc[flip, "label"]
    kw = dict(target="label", features=ds.features, id_column="id", seed=seed, n_threads=THREADS)

    t0 = time.perf_counter()
    oof = out_of_fold(ref, noisy, **kw)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = flag_label_noise(oof)
    t_flag = time.perf_counter() - t0
    ours = report.mask(noisy)
    cl, cl_secs = cleanlab_masks(oof.labels, oof.joint)
    floor = int((find_label_noise(ref, cur, **kw).mask(cur) & seg).sum())

    p, r, pa, out = scores(ours, flip, seg)
    row = [f"{ds.name:<10} {kind:<5} {seed:>4} {int(flip.sum()):>6} {floor:>5} | {p:6.3f} {r:6.3f} {pa:6.3f} {out:>5} "
           f"{report.n_explained_by_today:>4} {t_fit:6.1f} {t_flag:6.3f}"]
    for rule in ("prune_by_noise_rate", "confident_learning"):
        p, r, pa, out = scores(cl[rule], flip, seg)
        row.append(f"{p:6.3f} {r:6.3f} {pa:6.3f} {out:>5} {cl_secs[rule]:6.3f}")
    return " | ".join(row)


def consistent(ds: Dataset, seed: int, n_current: int) -> str:
    ref, cur, _ = split(replace(ds, n_current=n_current), seed)
    ref = ref.assign(label=ref[ds.clean].astype(int))
    cur = cur.assign(label=cur[ds.clean].astype(int))
    changed = in_segment(cur, ds.consistent)
    cur.loc[changed, "label"] = 1 - cur.loc[changed, "label"]
    oof = out_of_fold(ref, cur, target="label", features=ds.features, id_column="id", seed=seed,
                      n_threads=THREADS)
    report = flag_label_noise(oof)
    sus, exp = report.mask(cur), report.mask(cur, "explained_by_today")
    flagged = sus | exp
    cl, _ = cleanlab_masks(oof.labels, oof.joint)
    return (f"{ds.name:<10} {n_current:>7} {seed:>4} {int(changed.sum()):>7} {int((flagged & changed).sum()):>7} "
            f"{int((exp & changed).sum()):>9} {int((sus & changed).sum()):>8} {int((exp & ~changed).sum()):>11} | "
            f"{int((cl['prune_by_noise_rate'] & changed).sum()):>9}")


def scale() -> str:
    rng = np.random.default_rng(0)

    def frame(n: int) -> pd.DataFrame:
        cols: dict[str, object] = {f"x{i}": rng.standard_normal(n) for i in range(6)}
        for i in range(4):
            cols[f"c{i}"] = np.array(list("abcdefgh"[: 3 + i]), dtype=object)[rng.integers(0, 3 + i, n)]
        f = pd.DataFrame(cols)
        f.loc[rng.random(n) < 0.02, "x1"] = np.nan
        z = f.x0 + f.x2 * (f.c0 == "a") - 0.5 * f.x3.abs() + 0.3 * rng.standard_normal(n)
        return f.assign(y=(z > 0).astype(int), id=np.arange(n))

    ref, cur = frame(200_000), frame(200_000)
    features = [c for c in ref.columns if c not in ("y", "id")]
    t0 = time.perf_counter()
    report = find_label_noise(ref, cur, target="y", features=features, id_column="id", n_threads=THREADS)
    secs = time.perf_counter() - t0
    return (f"200,000 ref + 200,000 current x 10 features: {secs:.1f} s, fit_rows {report.fit_rows}, "
            f"{report.n_suspects} suspects, peak RSS {peak_rss_mib():.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, no scale part")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="OpenMP threads per fit (default: all cores)")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    warnings.filterwarnings("ignore", module="cleanlab")
    seeds = range(1 if args.quick else args.seeds)
    import cleanlab

    print(f"(1) {NOISE:.0%} of labels flipped in one segment; P/R inside the segment, 'P all' over every suspect")
    print(f"    cleanlab {cleanlab.__version__} on the same out-of-fold probabilities; fits on "
          f"{'all cores' if THREADS is None else f'{THREADS} thread(s)'}; 'fit s' is shared by both")
    head = (f"{'dataset':<10} {'label':<5} {'seed':>4} {'flips':>6} {'floor':>5} | "
            f"{'P':>6} {'R':>6} {'P all':>6} {'out':>5} {'expl':>4} {'fit s':>6} {'rule s':>6} | "
            f"{'P':>6} {'R':>6} {'P all':>6} {'out':>5} {'s':>6} | {'P':>6} {'R':>6} {'P all':>6} {'out':>5} {'s':>6}")
    print(f"{'':<34}| {'driftwarden find_label_noise':<47}| {'cleanlab prune_by_noise_rate':<34}| "
          f"cleanlab confident_learning")
    print(head)
    sets = datasets()
    for ds in sets:
        for kind in ("clean", "raw"):
            for seed in seeds:
                print(planted(ds, kind, seed), flush=True)
    print()
    print("(2) every label of one segment flipped (a consistent change), clean labels; driftwarden | cleanlab")
    print(f"{'dataset':<10} {'current':>7} {'seed':>4} {'changed':>7} {'flagged':>7} {'explained':>9} {'suspects':>8} "
          f"{'expl. other':>11} | {'cleanlab':>9}")
    for ds in sets:
        for n_current in (2_500, ds.n_current):
            for seed in seeds:
                print(consistent(ds, seed, n_current), flush=True)
    if not args.quick:
        print()
        print("(3) scale")
        print(scale())


if __name__ == "__main__":
    main()
