"""The dataset snapshot on the car-loan data with a planted covariate shift: the weighted reference
moves towards today's inputs, ESS is the formula, the fallback triggers on nearly separable
domains, named segments are covered (or reported), suspects are excluded and listed, the holdout is
the newest slice with the served columns, planted leakage stops the build, hashes match, and one
seed gives the same bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from agent.retrain.dataset import (SOURCE, WEIGHT, DatasetError, DatasetManifest, DatasetSpec, LeakageError,
                                   SegmentError, build_dataset, load_dataset, parse_segment, segment_mask)
from tests.support.data import data_file

FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
            "size_of_downpayment", "driver_tenure"]
SPEC = DatasetSpec(target="repaid", features=tuple(FEATURES), prediction_column="y_pred", score_column="y_pred_proba",
                   domain_max_iter=30, min_support=50, seed=3)
RICH = "salary_range=60K+ €"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The domain classifier's OpenMP threads on a shared, busy CPU slow it 20-fold; one is plenty here."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def car_loan() -> pd.DataFrame:
    return pd.read_csv(data_file("synthetic_car_loan_reference.csv"))


@pytest.fixture(scope="module")
def shifted(car_loan: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference: a uniform sample of the first 20,000 loans. Recent: later loans drawn with
    probability rising with car_value (P(y|x) unchanged: covariate shift)."""
    rng = np.random.default_rng(0)
    reference = car_loan.iloc[:20_000].sample(1_200, random_state=0).sort_values("id").reset_index(drop=True)
    pool = car_loan.iloc[20_000:]
    z = (pool["car_value"] - pool["car_value"].mean()) / pool["car_value"].std()
    p = np.exp(z.to_numpy())
    recent = pool.iloc[np.sort(rng.choice(len(pool), 900, replace=False, p=p / p.sum()))].reset_index(drop=True)
    recent["__window__"] = np.arange(len(recent)) // 100
    return reference, recent


@pytest.fixture(scope="module")
def built(shifted: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[DatasetManifest, Path, list]:
    reference, recent = shifted
    suspects = [int(recent["id"].iloc[i]) for i in (3, 10, 50, 200, 400)] + [str(recent["id"].iloc[-1]), "no-such-id"]
    spec = replace(SPEC, segments=(RICH, "car_value=[40000, inf) & salary_range=20K - 40K €"), exclude_ids=suspects)
    out = tmp_path_factory.mktemp("snapshot")
    return build_dataset(reference, recent, spec, out), out, suspects


def test_weights_move_the_reference_towards_today(built, shifted) -> None:
    manifest, out, _ = built
    reference, recent = shifted
    train = pd.read_parquet(out / "train.parquet")
    ref = train[train[SOURCE] == "reference"]
    today = train.loc[train[SOURCE] == "recent", "car_value"].mean()
    assert not manifest.fallback and manifest.fallback_reason is None
    for column in ("car_value",):
        plain, weighted = ref[column].mean(), np.average(ref[column], weights=ref[WEIGHT])
        assert abs(weighted - today) < 0.3 * abs(plain - today), (plain, weighted, today)
    assert len(ref) == manifest.rows.train_reference == len(reference)
    assert (train.loc[train[SOURCE] == "recent", WEIGHT] == 1.0).all()


def test_ess_is_the_formula(built) -> None:
    manifest, out, _ = built
    train = pd.read_parquet(out / "train.parquet")
    w = train.loc[train[SOURCE] == "reference", WEIGHT].to_numpy() / SPEC.reference_weight
    s = manifest.weights
    assert s is not None
    assert s.ess == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)
    assert s.ess_share == pytest.approx(s.ess / len(w), rel=1e-12) and s.ess_share >= SPEC.min_ess_share
    assert w.mean() == pytest.approx(1.0) and s.max <= SPEC.clip + 1e-9 and s.min == pytest.approx(w.min())
    assert s.median == pytest.approx(np.median(w)) and 0.6 < s.domain_auc < SPEC.max_domain_auc
    written = json.loads((out / "manifest.json").read_text())
    assert written["weights"]["ess"] == s.ess and written["fallback"] is False


def test_excluded_ids_absent_from_train_and_listed(built) -> None:
    manifest, out, suspects = built
    train, holdout = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "holdout.parquet")
    in_train = [str(i) for i in suspects[:5]]
    assert not train["id"].astype(str).isin(in_train).any()
    assert manifest.excluded_ids == tuple(in_train) and manifest.excluded_count == 5
    assert manifest.rows.excluded_recent == 5 and manifest.rows.excluded_reference == 0
    assert manifest.excluded_in_holdout == 1 and str(suspects[5]) in holdout["id"].astype(str).tolist()
    assert manifest.excluded_not_found == 1 and not manifest.excluded_ids_truncated


def test_holdout_is_the_newest_slice_with_served_columns(built, shifted) -> None:
    manifest, out, _ = built
    _, recent = shifted
    train, holdout = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "holdout.parquet")
    assert len(holdout) == manifest.rows.holdout == round(0.2 * len(recent))
    newest = recent.sort_values("timestamp", kind="stable").tail(len(holdout))
    assert holdout["id"].tolist() == newest["id"].tolist()
    recent_train = train[train[SOURCE] == "recent"]
    assert pd.to_datetime(recent_train["timestamp"]).max() <= pd.to_datetime(holdout["timestamp"]).min()
    served = recent.set_index("id").loc[holdout["id"], ["y_pred", "y_pred_proba"]]
    np.testing.assert_array_equal(holdout[["y_pred", "y_pred_proba"]].to_numpy(), served.to_numpy())
    assert manifest.holdout_windows == tuple(sorted(set(holdout["__window__"])))
    assert manifest.source_windows == tuple(range(9)) and manifest.holdout_span[1] == str(newest["timestamp"].iloc[-1])
    assert set(FEATURES) <= set(holdout.columns) and SOURCE not in holdout.columns


def test_manifest_hashes_match_and_load_verifies(built) -> None:
    manifest, out, _ = built
    for f in manifest.files:
        assert hashlib.sha256((out / f.name).read_bytes()).hexdigest() == f.sha256
        assert (out / f.name).stat().st_size == f.bytes
    snap = load_dataset(out)
    assert snap.manifest == manifest and len(snap.train) == manifest.rows.train
    assert snap.manifest.versions["pyarrow"] and {"numpy", "pandas", "scikit-learn", "torch"} <= set(manifest.versions)
    cover = {c.segment: c for c in manifest.segments}
    assert cover[RICH].covered and cover[RICH].after >= SPEC.min_support


def test_tampered_file_is_refused(built, tmp_path: Path) -> None:
    _, out, _ = built
    for name in ("train.parquet", "holdout.parquet", "manifest.json"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    holdout = pd.read_parquet(tmp_path / "holdout.parquet")
    holdout.iloc[:-1].to_parquet(tmp_path / "holdout.parquet")
    with pytest.raises(DatasetError, match="sha256"):
        load_dataset(tmp_path)


def test_same_seed_same_bytes(built, shifted, tmp_path: Path) -> None:
    manifest, out, _ = built
    again = build_dataset(*shifted, manifest.spec, tmp_path)
    for name in ("train.parquet", "holdout.parquet", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert again == manifest


def test_schema_feeds_the_trainer(built) -> None:
    pytest.importorskip("torch")
    manifest, out, _ = built
    schema = manifest.schema()
    train, holdout = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "holdout.parquet")
    assert schema.weight_column == WEIGHT and schema.served_column == "y_pred_proba" and schema.task == "binary"
    assert set(schema.features) == set(FEATURES) and "repaid_loan_on_prev_car" in schema.categorical
    for frame in (train, holdout):
        assert set(schema.features) | {schema.target, schema.id_column, schema.time_column} <= set(frame.columns)
    assert all(train[c].dtype == holdout[c].dtype for c in FEATURES)


def test_fallback_when_domains_nearly_separable(shifted, tmp_path: Path) -> None:
    reference, recent = shifted
    moved = recent.assign(car_value=recent["car_value"] + 200_000)
    manifest = build_dataset(reference, moved, replace(SPEC, min_ess_share=0.99), tmp_path)
    w = manifest.weights
    assert manifest.fallback and w is not None and w.domain_auc >= SPEC.max_domain_auc
    assert "nearly separable" in manifest.fallback_reason
    assert w.ess_share < 0.99 and f"effective sample size {w.ess:.1f}" in manifest.fallback_reason  # both reasons
    train = pd.read_parquet(tmp_path / "train.parquet")
    assert (train[SOURCE] == "recent").all() and (train[WEIGHT] == 1.0).all()
    assert manifest.rows.train_reference == 0 and manifest.rows.train == manifest.rows.train_recent


def test_stratification_tops_up_a_named_segment(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    reference = car_loan.iloc[:5_000].reset_index(drop=True)
    later = car_loan.iloc[5_000:8_000]
    rich = later["salary_range"] == "60K+ €"
    recent = pd.concat([later[~rich], later[rich].head(5)]).sort_values("id").reset_index(drop=True)
    rare = "car_value=[90000, inf) & salary_range=0 - 20K €"
    spec = replace(SPEC, weighting=False, min_support=120, reference_weight=0.5,
                   segments=(RICH, rare, "salary_range=__other__", "region=north"))
    manifest = build_dataset(reference, recent, spec, tmp_path)
    assert manifest.fallback and "off in the spec" in manifest.fallback_reason
    cover = {c.segment: c for c in manifest.segments}
    rich_cover = cover[RICH]
    assert rich_cover.before < 120 and rich_cover.after == 120 and rich_cover.added == 120 - rich_cover.before
    assert rich_cover.covered and rich_cover.holdout == int(segment_mask(recent.tail(len(recent) // 5), RICH).sum())
    train = pd.read_parquet(tmp_path / "train.parquet")
    added = train[train[SOURCE] == "reference"]
    rare_cover = cover[rare]
    assert len(added) == manifest.rows.train_added == rich_cover.added + rare_cover.added
    assert added["salary_range"].isin(["60K+ €", "0 - 20K €"]).all() and (added[WEIGHT] == 0.5).all()
    assert set(added["id"]) <= set(reference["id"]) and added["id"].is_unique
    # the rare segment gets every labelled row there is, and is still reported short
    assert not rare_cover.covered and rare_cover.added > 0
    assert rare_cover.after == rare_cover.input_rows - rare_cover.holdout < 120
    assert "min_support 120" in cover[rare].reason
    assert not cover["salary_range=__other__"].covered and "cannot" in cover["salary_range=__other__"].reason
    assert not cover["region=north"].covered and "cannot parse" in cover["region=north"].reason
    assert set(manifest.uncovered) == {rare, "salary_range=__other__", "region=north"}


def test_segment_parser() -> None:
    frame = pd.DataFrame({"salary_range": ["20K - 40K €", "0 - 20K €", None, "20K - 40K €"],
                          "car_value": [10_000.0, 25_000.0, 40_000.0, np.nan], "loan_length": [19, 7, 19, 3],
                          "prev": [True, False, True, False], "band": ["[10, 20)", "x", "y", "[10, 20)"],
                          "a & b": ["p & q", "p", "p & q", "r"]})
    assert segment_mask(frame, "salary_range=20K - 40K €").tolist() == [True, False, False, True]
    assert segment_mask(frame, "car_value=[-inf, 25000)").tolist() == [True, False, False, False]
    assert segment_mask(frame, "car_value=[25000, inf)").tolist() == [False, True, True, False]
    assert segment_mask(frame, "car_value=[1e4, 2.5e4) & salary_range=20K - 40K €").tolist() == [True] + [False] * 3
    assert segment_mask(frame, "loan_length=19").tolist() == [True, False, True, False]
    assert segment_mask(frame, "loan_length=19.0 & prev=True").tolist() == [True, False, True, False]
    assert segment_mask(frame, "salary_range=__null__").tolist() == [False, False, True, False]
    assert segment_mask(frame, "car_value=__null__").tolist() == [False, False, False, True]
    assert segment_mask(frame, "band=[10, 20)").tolist() == [True, False, False, True]   # a text level, not numbers
    assert segment_mask(frame, "a & b=p & q & loan_length=19").tolist() == [True, False, True, False]
    assert parse_segment("car_value=[-inf, inf)", ["car_value"])[0].interval == (-np.inf, np.inf)
    with pytest.raises(SegmentError, match="known column"):
        segment_mask(frame, "region=north")
    with pytest.raises(SegmentError, match="__other__"):
        segment_mask(frame, "salary_range=__other__")


def _recent(car_loan: pd.DataFrame) -> pd.DataFrame:
    return car_loan.iloc[1_000:1_500].reset_index(drop=True)


def test_leakage_by_id_stops_the_build(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    recent = _recent(car_loan)
    recent.loc[10, "id"] = recent["id"].iloc[-1]         # an old row carries a holdout row's id
    with pytest.raises(LeakageError, match="id that is also in train") as err:
        build_dataset(car_loan.iloc[:500], recent, replace(SPEC, weighting=False), tmp_path)
    assert err.value.ids == (str(recent["id"].iloc[-1]),) and err.value.rows == 0
    assert not any(tmp_path.iterdir())                   # nothing written


def test_leakage_by_duplicate_row_stops_the_build(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    recent = _recent(car_loan)
    cols = [*FEATURES, "repaid"]
    recent.loc[10, cols] = recent.loc[len(recent) - 3, cols].to_numpy()   # same inputs and label, other id
    with pytest.raises(LeakageError, match="duplicate a train row") as err:
        build_dataset(car_loan.iloc[:500], recent, replace(SPEC, weighting=False), tmp_path)
    assert err.value.rows == 1 and err.value.ids == ()
    assert not (tmp_path / "manifest.json").exists()
    # the same duplicate planted in the reference is caught once reference rows are in train
    recent = _recent(car_loan)
    reference = car_loan.iloc[:500].copy()
    reference.loc[0, cols] = recent.loc[len(recent) - 1, cols].to_numpy()
    with pytest.raises(LeakageError, match="duplicate"):
        build_dataset(reference, recent, replace(SPEC, weighting=False, segments=("id=[0, 1)",), min_support=10),
                      tmp_path)


def test_dtypes_are_harmonised_and_unlabelled_rows_dropped(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    recent = _recent(car_loan).astype({"loan_length": "int64", "salary_range": "category", "id": "str"})
    recent["repaid_loan_on_prev_car"] = recent["repaid_loan_on_prev_car"].map(str)   # "True"/"False" text
    recent.loc[[5, 6], "repaid"] = np.nan
    manifest = build_dataset(car_loan.iloc[:500], recent, replace(SPEC, weighting=False), tmp_path)
    assert manifest.rows.unlabelled_recent == 2 and manifest.rows.recent_input == 500
    assert manifest.rows.train_recent + manifest.rows.holdout == 498
    snap = load_dataset(tmp_path)
    assert all(snap.train[c].dtype == snap.holdout[c].dtype for c in FEATURES)
    assert snap.train["loan_length"].dtype == np.float64 and snap.train[WEIGHT].eq(1.0).all()


def test_bad_specs_raise() -> None:
    for change in ({"holdout_share": 0.0}, {"holdout_share": 1.0}, {"clip": 0.5}, {"clip": float("inf")}, {"min_ess_share": 1.5},
                   {"max_domain_auc": 0.5}, {"min_support": -1}, {"seed": 1.5}, {"reference_weight": 0.0},
                   {"features": ()}, {"categorical": ("nope",)}, {"task": "ranking"},
                   {"features": ("id", "car_value")}):
        with pytest.raises(ValueError):
            replace(SPEC, **change)
    assert DatasetSpec.from_dict(SPEC.to_dict()) == SPEC


def test_bad_inputs_raise(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="lack columns"):
        build_dataset(car_loan.iloc[:10], _recent(car_loan).drop(columns="y_pred"), SPEC, tmp_path)
    with pytest.raises(DatasetError, match="at least 2"):
        build_dataset(car_loan.iloc[:10], _recent(car_loan).head(1), SPEC, tmp_path)
    with pytest.raises(DatasetError, match="no id_column"):
        build_dataset(car_loan.iloc[:10], _recent(car_loan), replace(SPEC, id_column=None, exclude_ids=(1,)), tmp_path)


def test_built_from_the_traffic_store(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    """Windows appended to the store (event times as float seconds, as the agent keeps them), read
    back and built into a snapshot against a reference whose timestamps are text."""
    from agent.retrain.traffic import TrafficStore

    store = TrafficStore(tmp_path / "state", "car-loan")
    rows = _recent(car_loan)
    rows["timestamp"] = pd.to_datetime(rows["timestamp"]).astype("int64") / 1e9
    rows["id"] = rows["id"].astype(str)
    for w in range(5):
        part = rows.iloc[w * 100:(w + 1) * 100]
        if w == 2:
            part = part.assign(y_pred_proba=np.nan)        # a window whose served scores were all missing
        store.append(10 + w, part)
    recent = store.read()
    manifest = build_dataset(car_loan.iloc[:500], recent, replace(SPEC, weighting=False), tmp_path / "snap")
    assert manifest.source_windows == (10, 11, 12, 13, 14) and manifest.holdout_windows == (14,)
    snap = load_dataset(tmp_path / "snap")
    assert snap.holdout["id"].tolist() == rows["id"].tail(100).tolist()
    assert snap.holdout["y_pred_proba"].notna().all() and len(snap.train) == 400


def test_stale_segments_drop_the_references_rows_there(car_loan: pd.DataFrame, tmp_path: Path) -> None:
    """Concept drift in a segment: the reference's labels there follow the old relation, so none of
    its rows of that segment reach train (weighted or topped up); today's rows there stay."""
    reference = car_loan.iloc[:5_000].reset_index(drop=True)
    recent = car_loan.iloc[5_000:8_000].reset_index(drop=True)
    stale = "salary_range=20K - 40K €"
    spec = replace(SPEC, segments=(stale,), stale_segments=(stale,), min_support=50)
    build_dataset(reference, recent, spec, tmp_path)
    train = pd.read_parquet(tmp_path / "train.parquet")
    ref_rows, recent_rows = train[train[SOURCE] == "reference"], train[train[SOURCE] == "recent"]
    assert len(ref_rows) > 0 and not segment_mask(ref_rows, stale).any()
    assert segment_mask(recent_rows, stale).sum() > 50
