"""The `constant` check of detectors.rca.quality: a value stuck in every row, or a default filled
in for many rows (the other values keep their mix), is a pipeline fault; a category mix that
moves towards one level is covariate shift, not a fault."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.rca.quality import data_quality

LEVELS = np.array(["north", "south", "east", "west"], dtype=object)
REF_P = [0.30, 0.30, 0.20, 0.20]


def frames(current: np.ndarray, n_ref: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return (pd.DataFrame({"region": rng.choice(LEVELS, n_ref, p=REF_P), "x": rng.normal(size=n_ref)}),
            pd.DataFrame({"region": current, "x": rng.normal(size=len(current))}))


def constant(reference: pd.DataFrame, current: pd.DataFrame) -> list:
    return [f for f in data_quality(reference, current, ["region", "x"], categorical=["region"])
            if f.check == "constant"]


def test_a_default_filled_in_for_a_third_of_the_rows_is_found() -> None:
    rng = np.random.default_rng(1)
    cur = rng.choice(LEVELS, 10_000, p=REF_P)
    cur[rng.random(10_000) < 0.35] = "west"              # a failing lookup writes its default
    found = constant(*frames(cur))
    assert [(f.feature, f.detail["value"]) for f in found] == [("region", "west")]
    assert 0.25 <= found[0].effect <= 0.35


def test_a_mix_moving_towards_one_level_is_not_a_fault() -> None:
    rng = np.random.default_rng(2)
    cur = rng.choice(LEVELS, 10_000, p=[0.15, 0.20, 0.15, 0.50])   # the demo's drifted region mix
    assert constant(*frames(cur)) == []


def test_a_feature_stuck_on_one_value_is_found() -> None:
    rng = np.random.default_rng(3)
    cur = np.where(rng.random(5000) < 0.95, "east", rng.choice(LEVELS, 5000, p=REF_P)).astype(object)
    (found,) = constant(*frames(cur))
    assert found.detail["value"] == "east" and found.detail["share_current"] >= 0.9
