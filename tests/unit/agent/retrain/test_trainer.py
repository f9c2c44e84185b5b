"""The trainer end to end: a sound car-loan run is HEALTHY and close to the served model; every gate
stops the run on its planted fault (injected through train()'s own seams); multiclass and
regression; one seed reproduces the weights bit for bit on the CPU."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_friedman1
from torch import nn

from agent.retrain.tabular import (Batch, ModuleSpec, Preprocessor, Split, TabularMLP, TabularSchema, TrainedModel,
                                   evaluate_loss)
from agent.retrain.trainer import TrainConfig, train
from tests.support.data import data_file

FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
            "size_of_downpayment", "driver_tenure"]
FAST = TrainConfig(epochs=4, bootstrap_resamples=300, gradcheck=False)


@pytest.fixture(scope="module")
def car_loan() -> pd.DataFrame:
    df = pd.read_csv(data_file("synthetic_car_loan_reference.csv"))
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(car_loan: pd.DataFrame) -> TabularSchema:
    return TabularSchema.from_frame(car_loan, "binary", "repaid", FEATURES, id_column="id",
                                    time_column="timestamp", served_column="y_pred_proba")


@pytest.fixture(scope="module")
def small(car_loan: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return car_loan.iloc[:4500], car_loan.iloc[4500:6000]


def failed(result) -> str | None:  # type: ignore[no-untyped-def]
    return result.report.failed_gate


# ----------------------------------------------------------------------------- the sound run


def test_a_sound_car_loan_run_is_healthy_and_close_to_the_served_model(car_loan: pd.DataFrame,
                                                                       schema: TabularSchema) -> None:
    seen: list[tuple[int, int]] = []
    res = train(car_loan.iloc[:12000], car_loan.iloc[12000:16000], schema,
                TrainConfig(epochs=12, bootstrap_resamples=1000), segment_columns=["salary_range"],
                progress=lambda epoch, total, metrics: seen.append((epoch, total)))
    rep = res.report
    assert rep.healthy, rep.summary()
    names = [g.name for g in rep.gates]
    assert names == ["data.shapes", "data.dtypes", "data.finite", "data.normalised", "data.label_alignment",
                     "data.leakage", "init.symmetry", "init.loss", "grad.flow", "grad.check", "overfit.one_batch",
                     "train.finite", "train.grad_norm", "train.loss_decreasing", "train.early_stopping",
                     "baseline", "champion"]
    m = rep.metrics
    assert m["holdout_roc_auc"] > 0.95
    assert abs(m["holdout_roc_auc"] - m["holdout_champion_roc_auc"]) < 0.015     # the served model is strong
    assert m["val_roc_auc"] > m["baseline_val_roc_auc"]
    assert rep.comparison is not None and len(rep.comparison.segments) == 4
    assert seen == [(e, 12) for e in range(1, len(rep.history) + 1)]
    assert len(rep.step_grad_norms) == m["steps"]
    env = rep.environment
    assert env["device"] == "cpu" and env["precision"] == "float32" and env["seed"] == 0
    assert {"torch", "numpy", "sklearn", "python"} <= set(env)
    assert json.loads(json.dumps(rep.to_dict(), allow_nan=False))["verdict"] in ("promote", "reject")
    text = rep.summary()
    assert all(n in text for n in names) and "HEALTHY" in text
    assert res.model is not None
    p = res.model.predict(car_loan.iloc[12000:12010])
    assert p.shape == (10,) and ((0 <= p) & (p <= 1)).all()


# ----------------------------------------------------------------------------- planted faults


def frozen(spec: ModuleSpec) -> nn.Module:
    m = TabularMLP(spec)
    m.layers[0].weight.requires_grad_(False)
    return m


class Detached(TabularMLP):
    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        h = torch.cat([numeric] + [e(categorical[:, i]) for i, e in enumerate(self.embeddings)], dim=1)
        h = torch.relu(self.layers[0](h)).detach()
        for layer in self.layers[1:]:
            h = torch.relu(layer(h))
        return self.head(h)


class NumericOnly(nn.Module):
    """A network blind to the categorical columns (salary range, down payment): it trains and can
    overfit a batch, yet loses to the logistic baseline that sees them."""

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(spec.n_numeric, 32), nn.ReLU(), nn.Linear(32, spec.out_dim))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.net(numeric)


def constant(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.05)


def blown_head(module: nn.Module) -> None:
    with torch.no_grad():
        module.head.weight.mul_(50)


def nan_at_step_3(step: int, batch: Batch) -> Batch:
    return replace(batch, numeric=torch.full_like(batch.numeric, math.nan)) if step == 3 else batch


@pytest.mark.parametrize("fault, kwargs, gate", [
    ("a frozen layer", {"module_factory": frozen}, "grad.flow"),
    ("a detached layer", {"module_factory": Detached}, "grad.flow"),
    ("all weights one constant", {"init": constant}, "init.symmetry"),
    ("a head far from chance", {"init": blown_head}, "init.loss"),
    ("NaN in a batch", {"on_batch": nan_at_step_3}, "train.finite"),
    ("an exploding learning rate", {"config": replace(FAST, lr=10.0)}, "train.grad_norm"),
    ("a step budget too small to overfit", {"config": replace(FAST, overfit_steps=2)}, "overfit.one_batch"),
    ("a model weaker than the baseline", {"module_factory": NumericOnly}, "baseline"),
])
def test_each_gate_stops_the_run_on_its_fault(small, schema: TabularSchema, fault: str, kwargs: dict,
                                               gate: str) -> None:
    train_frame, holdout = small
    res = train(train_frame, holdout, schema, kwargs.pop("config", FAST), **kwargs)
    rep = res.report
    assert rep.failed_gate == gate, f"{fault}: {rep.summary()}"
    assert not rep.healthy and not rep.promote and rep.gates[-1].name == gate
    assert all(g.passed for g in rep.gates[:-1])
    assert f"FAILED at {gate}" in rep.summary()
    assert json.loads(json.dumps(rep.to_dict(), allow_nan=False))["failed_gate"] == gate


def test_labels_shuffled_against_features_fail_the_alignment_gate(small, schema: TabularSchema) -> None:
    train_frame, holdout = small
    shuffled = train_frame.assign(repaid=np.random.default_rng(0).permutation(train_frame["repaid"].to_numpy()))
    assert failed(train(shuffled, holdout, schema, FAST)) == "data.label_alignment"


def test_leakage_between_train_and_holdout_fails(small, schema: TabularSchema) -> None:
    train_frame, holdout = small
    leaked = pd.concat([holdout, train_frame.iloc[:20]], ignore_index=True)
    res = train(train_frame, leaked, schema, FAST)
    assert failed(res) == "data.leakage" and res.report.gates[-1].figure == 40   # 20 ids + 20 rows
    assert res.model is None


def test_infinite_values_and_foreign_standardisation_fail_the_data_gates(small, schema: TabularSchema) -> None:
    train_frame, holdout = small
    bad = train_frame.copy()
    bad.loc[bad.index[10], "car_value"] = np.inf
    assert failed(train(bad, holdout, schema, FAST)) == "data.finite"
    elsewhere = Preprocessor.fit(train_frame.assign(car_value=train_frame["car_value"] * 3), schema)
    assert failed(train(train_frame, holdout, schema, FAST, preprocessor=elsewhere)) == "data.normalised"
    unseen = holdout.assign(repaid=holdout["repaid"].replace({1.0: 2.0}))
    assert failed(train(train_frame, unseen, schema, FAST)) == "data.preprocess"


def test_a_challenger_worse_than_the_champion_is_rejected(small, schema: TabularSchema) -> None:
    train_frame, holdout = small
    noise = np.random.default_rng(1).normal(0, 0.02, len(holdout))
    oracle = holdout.assign(y_pred_proba=np.clip(holdout["repaid"] * 0.9 + 0.05 + noise, 0, 1))
    res = train(train_frame, oracle, schema, FAST)
    rep = res.report
    assert rep.healthy and not rep.promote and rep.failed_gate == "champion" and rep.verdict == "reject"
    assert rep.comparison is not None and rep.comparison.improvement.high < 0
    assert res.model is not None                     # returned for inspection; the champion stays
    assert "NOT PROMOTED (the champion stays)" in rep.summary()


# ----------------------------------------------------------------------------- other tasks


def rings(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    cls = np.digitize(x[:, 0] ** 2 + x[:, 1] ** 2, [0.6, 1.8])
    names = np.array(["inner", "middle", "outer"])
    served = np.where(rng.random(n) < 0.4, rng.integers(0, 3, n), cls)        # a weak champion
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    return df.assign(shop=rng.choice(["x", "y", "z"], n), ring=names[cls], served=names[served], id=np.arange(n),
                     ts=pd.date_range("2024-01-01", periods=n, freq="min"))


def test_multiclass_beats_its_baseline_and_a_weak_champion() -> None:
    df = rings(4000, 0)
    schema = TabularSchema("multiclass", "ring", numeric=("a", "b", "c", "d"), categorical=("shop",),
                           id_column="id", time_column="ts", served_column="served")
    res = train(df.iloc[:3000], df.iloc[3000:], schema,
                TrainConfig(epochs=25, batch_size=128, bootstrap_resamples=500), segment_columns=["shop"])
    rep = res.report
    assert rep.promote, rep.summary()
    assert rep.metrics["init_loss"] == pytest.approx(rep.metrics["chance_loss"], rel=0.1)
    assert rep.metrics["chance_loss"] == pytest.approx(math.log(3), rel=0.05)
    assert rep.metrics["holdout_accuracy"] > 0.85 > rep.metrics["holdout_champion_accuracy"]
    assert res.model is not None and set(res.model.predict_label(df.iloc[:50])) <= {"inner", "middle", "outer"}


def test_regression_beats_ridge_and_a_noisy_champion(tmp_path) -> None:
    x, y = make_friedman1(n_samples=3000, noise=0.5, random_state=0)
    df = pd.DataFrame(x[:, :5], columns=[f"x{i}" for i in range(5)]).assign(y=y)
    df["served"] = y + np.random.default_rng(0).normal(0, 2.5, len(y))
    schema = TabularSchema("regression", "y", numeric=tuple(f"x{i}" for i in range(5)), served_column="served")
    res = train(df.iloc[:2400], df.iloc[2400:], schema,
                TrainConfig(epochs=40, batch_size=128, lr=1e-2, bootstrap_resamples=500))
    rep = res.report
    assert rep.promote, rep.summary()
    assert rep.metrics["holdout_rmse"] < rep.metrics["holdout_champion_rmse"]
    assert rep.metrics["val_rmse"] < rep.metrics["baseline_val_rmse"]
    assert res.model is not None
    res.model.save(tmp_path / "m")
    back = TrainedModel.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict(df.iloc[2400:]), res.model.predict(df.iloc[2400:]))
    assert np.sqrt(np.mean((back.predict(df.iloc[2400:]) - y[2400:]) ** 2)) == pytest.approx(
        rep.metrics["holdout_rmse"], rel=1e-4)


# ----------------------------------------------------------------------------- reproducibility


def test_the_same_seed_gives_bit_identical_weights_on_the_cpu(car_loan: pd.DataFrame, schema: TabularSchema) -> None:
    tr, va, ho = car_loan.iloc[:2400], car_loan.iloc[2400:3000], car_loan.iloc[3000:3600]
    cfg = TrainConfig(epochs=3, bootstrap_resamples=200, gradcheck=False, seed=7)
    threads, deterministic, rng_state = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                                         torch.get_rng_state())
    runs = [train(tr, ho, schema, c, validation=va, device="cpu")
            for c in (cfg, cfg, replace(cfg, seed=8))]
    # the caller's process state is left as it was: thread count, deterministic flag, global RNG
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    assert torch.equal(torch.get_rng_state(), rng_state)
    (a, b, c) = (r.model.module.state_dict() for r in runs)  # type: ignore[union-attr]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert runs[0].report.step_grad_norms == runs[1].report.step_grad_norms
    assert [e.val_loss for e in runs[0].report.history] == [e.val_loss for e in runs[1].report.history]
    # early stopping restored the best epoch's weights: the returned model has the best validation loss
    model = runs[0].model
    assert model is not None
    pre = model.preprocessor
    split = Split(pre.transform(va), pre.encode_target(va["repaid"]), np.ones(len(va), dtype=np.float32))
    assert evaluate_loss(model.module, "binary", split) == pytest.approx(runs[0].report.metrics["best_val_loss"],
                                                                         abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_same_gates_pass_on_cuda_with_mixed_precision(small, schema: TabularSchema) -> None:
    train_frame, holdout = small
    res = train(train_frame, holdout, schema, replace(FAST, epochs=6, gradcheck=True), device="cuda")
    rep = res.report
    assert rep.healthy, rep.summary()
    assert rep.environment["device"].startswith("cuda") and "autocast" in rep.environment["precision"]
