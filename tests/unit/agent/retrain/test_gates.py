"""The retraining gates one by one, each on its planted fault and on sound input; the paired
bootstrap and the metrics against scipy / scikit-learn; preprocessing and the saved model."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

from agent.retrain import gates as G
from agent.retrain.tabular import (Batch, ModuleSpec, Preprocessor, Split, TabularMLP, TabularSchema, TrainedModel,
                                   output_bias)
from agent.retrain.trainer import TrainConfig

@pytest.fixture(autouse=True)
def one_thread():
    """Small models: one thread is fastest (and what the trainer uses by default)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


SPEC = ModuleSpec(n_numeric=3, cardinalities=(4,), out_dim=1, hidden=(16, 8), dropout=0.0)


def batch(n: int = 64, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    c = torch.randint(0, 4, (n, 1), generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).float()
    return Batch(x, c, y, torch.ones(n))


def mlp(seed: int = 0) -> TabularMLP:
    torch.manual_seed(seed)
    return TabularMLP(SPEC)


# ----------------------------------------------------------------------------- bootstrap and metrics


def test_paired_bootstrap_equals_scipy_on_the_same_paired_statistic_and_seed() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n).astype(float)
    a, b = y * 0.5 + rng.normal(size=n), y * 0.8 + rng.normal(size=n)
    ours = G.paired_bootstrap(lambda w: G.metric_rows("binary", y, b, w) - G.metric_rows("binary", y, a, w), n,
                              n_resamples=1000, seed=7)

    def auc(yy: np.ndarray, ss: np.ndarray) -> np.ndarray:   # Mann-Whitney U / (n1 n0), per row
        ranks = scipy.stats.rankdata(ss, axis=-1)
        n1 = yy.sum(axis=-1)
        n0 = yy.shape[-1] - n1
        return ((ranks * yy).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)

    def auc_diff(yy: np.ndarray, aa: np.ndarray, bb: np.ndarray, axis: int = -1) -> np.ndarray:
        return auc(yy, bb) - auc(yy, aa)

    ref = scipy.stats.bootstrap((y, a, b), auc_diff, paired=True, vectorized=True, n_resamples=1000, batch=250,
                                method="percentile", confidence_level=0.95, rng=np.random.default_rng(7))
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    assert ours.estimate == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a), abs=1e-12)


def test_paired_bootstrap_rejects_bad_parameters() -> None:
    for kwargs in ({"n_resamples": 0}, {"confidence": 1.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            G.paired_bootstrap(lambda w: w.sum(axis=1), 5, **kwargs)


def test_metrics_match_scikit_learn_with_weights() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(float)
    s = np.round(y * 0.3 + rng.random(500), 1)          # ties on purpose
    w = rng.random(500)
    assert G.metric("binary", y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    k = rng.integers(0, 3, 500)
    p = rng.random((500, 3))
    assert G.metric("multiclass", k, p, w) == pytest.approx(accuracy_score(k, p.argmax(1), sample_weight=w))
    t, yhat = rng.normal(size=500), rng.normal(size=500)
    assert G.metric("regression", t, yhat, w) == pytest.approx(math.sqrt(mean_squared_error(t, yhat, sample_weight=w)))


# ----------------------------------------------------------------------------- data gates


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"id": np.arange(n) + 1000 * seed, "x": x, "z": rng.normal(size=n),
                         "colour": rng.choice(["red", "green", "blue"], n), "y": (rng.random(n) < 0.4).astype(int)})


SCHEMA = TabularSchema("binary", "y", numeric=("x", "z"), categorical=("colour",), id_column="id")


def split(pre: Preprocessor, df: pd.DataFrame) -> Split:
    return Split(pre.transform(df), pre.encode_target(df["y"]), np.ones(len(df), dtype=np.float32))


def test_preprocessing_is_fitted_on_train_rows_and_reads_unknowns() -> None:
    train = frame(400)
    pre = Preprocessor.fit(train, SCHEMA)
    x = train["x"].to_numpy()
    filled = np.where(np.isnan(x), np.nanmean(x), x)
    assert pre.numeric[0].mean == pytest.approx(np.nanmean(x))
    assert pre.numeric[0].std == pytest.approx(filled.std())
    assert pre.feature_names == ["x", "z", "x__missing", "colour"]
    new = pd.DataFrame({"id": [1, 2], "x": [np.nan, 3.0], "z": [0.0, 1.0], "colour": ["purple", None], "y": [0, 1]})
    f = pre.transform(new)
    assert f.numeric[0, 0] == 0.0 and f.numeric[0, 2] == 1.0 and f.numeric[1, 2] == 0.0
    assert f.categorical[:, 0].tolist() == [0, 0]            # unseen and missing: the unknown bucket
    assert Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    with pytest.raises(ValueError, match="not seen in train"):
        pre.encode_target(pd.Series([0, 2]))


def test_finite_gate_flags_an_infinite_feature() -> None:
    train = frame(200)
    pre = Preprocessor.fit(train, SCHEMA)
    bad = train.copy()
    bad.loc[5, "z"] = np.inf
    assert G.finite_gate({"train": split(pre, train)}).passed
    g = G.finite_gate({"train": split(pre, bad)})
    assert not g.passed and g.figure == 1 and "train.numeric" in g.detail


def test_normalised_gate_fails_when_standardisation_was_fitted_elsewhere() -> None:
    train = frame(300)
    assert G.normalised_gate(split(Preprocessor.fit(train, SCHEMA), train), np.array([0, 1]), 0.05).passed
    shifted = train.assign(x=train["x"] + 5)
    g = G.normalised_gate(split(Preprocessor.fit(shifted, SCHEMA), train), np.array([0, 1]), 0.05, ["x", "z"])
    assert not g.passed and g.figure > 1 and "worst x" in g.detail


def test_shapes_and_dtypes_gates() -> None:
    pre = Preprocessor.fit(frame(100), SCHEMA)
    s = split(pre, frame(100))
    assert G.shapes_gate({"train": s}, pre.n_numeric, pre.cardinalities, 50).passed
    assert not G.shapes_gate({"train": s}, pre.n_numeric, pre.cardinalities, 500).passed
    assert G.dtypes_gate({"train": s}, "binary").passed
    wrong = Split(s.features, s.target.astype(np.float64), s.weight)
    assert not G.dtypes_gate({"train": wrong}, "binary").passed


def test_leakage_gate_on_shared_ids_and_duplicate_rows() -> None:
    train, holdout = frame(200, seed=0), frame(100, seed=1)
    cols = ["x", "z", "colour", "y"]
    ok = G.leakage_gate(train["id"].to_numpy(), holdout["id"].to_numpy(), G.row_hashes(train, cols),
                        G.row_hashes(holdout, cols))
    assert ok.passed and ok.figure == 0
    leaked = pd.concat([holdout, train.iloc[:7]], ignore_index=True)     # same ids, same rows
    g = G.leakage_gate(train["id"].to_numpy(), leaked["id"].to_numpy(), G.row_hashes(train, cols),
                       G.row_hashes(leaked, cols))
    assert not g.passed and g.figure == 14
    copied = train.iloc[:3].assign(id=[-1, -2, -3])                       # new ids, duplicate rows
    assert G.leakage_gate(train["id"].to_numpy(), copied["id"].to_numpy(), G.row_hashes(train, cols),
                          G.row_hashes(copied, cols)).figure == 3


def test_alignment_gate_sees_labels_shuffled_against_features() -> None:
    df = frame(1500)
    df["y"] = (df["z"] + 0.3 * np.random.default_rng(2).normal(size=len(df)) > 0).astype(int)
    tr, va = df.iloc[:1000], df.iloc[1000:]
    pre = Preprocessor.fit(tr, SCHEMA)
    s_tr, s_va = split(pre, tr), split(pre, va)
    rng = np.random.default_rng(0)

    def gain_gate(train_split: Split) -> G.Gate:
        def loss(target: np.ndarray) -> float:
            pred = G.alignment_predictions("binary", train_split, s_va, pre.cardinalities, 2, target=target)
            return G.alignment_loss("binary", s_va.target, pred, s_va.weight)
        return G.alignment_gate(loss(train_split.target), [loss(rng.permutation(train_split.target))
                                                            for _ in range(2)], 0.02)

    assert gain_gate(s_tr).figure > 0.5
    for _ in range(3):   # a shuffle that by chance leans on z ranks val well (AUC ~0.9) yet predicts ~the prior
        shuffled = Split(s_tr.features, rng.permutation(s_tr.target), s_tr.weight)
        assert not gain_gate(shuffled).passed


# ----------------------------------------------------------------------------- initialisation and gradients


def test_symmetry_gate_fails_on_a_constant_initialisation() -> None:
    assert G.symmetry_gate(mlp()).passed
    m = mlp()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(0.1)
    g = G.symmetry_gate(m)
    assert not g.passed and "layers.0.weight" in g.detail and "same value" in g.detail


def test_chance_loss_is_ln_k_for_balanced_classes_and_the_variance_for_regression() -> None:
    assert G.chance_loss("binary", np.array([0, 1] * 50), np.ones(100), 2) == pytest.approx(math.log(2))
    assert G.chance_loss("multiclass", np.arange(300) % 3, np.ones(300), 3) == pytest.approx(math.log(3))
    y = np.random.default_rng(0).normal(size=1000)
    assert G.chance_loss("regression", y, np.ones(1000), 1) == pytest.approx(y.var())


def test_init_loss_gate_with_the_prior_bias_and_with_a_blown_up_head() -> None:
    b = batch(512)
    y = b.target.numpy()
    spec = ModuleSpec(3, (4,), 1, (16, 8), 0.0, output_bias("binary", y, np.ones(len(y)), 1))
    torch.manual_seed(0)
    m = TabularMLP(spec)
    chance = G.chance_loss("binary", y, np.ones(len(y)), 2)
    with torch.no_grad():
        assert G.init_loss_gate(float(b.loss(m, "binary")), chance, 0.25, 2).passed
        m.head.weight.mul_(100)
        assert not G.init_loss_gate(float(b.loss(m, "binary")), chance, 0.25, 2).passed


class Detached(TabularMLP):
    """A forward pass that cuts the graph after the first layer: the layers before it never learn."""

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        h = torch.cat([numeric] + [e(categorical[:, i]) for i, e in enumerate(self.embeddings)], dim=1)
        h = torch.relu(self.layers[0](h)).detach()
        for layer in self.layers[1:]:
            h = torch.relu(layer(h))
        return self.head(h)


def test_gradient_flow_gate_fails_on_a_frozen_or_detached_layer() -> None:
    assert G.gradient_flow_gate(mlp(), batch(), "binary").passed
    frozen = mlp()
    frozen.layers[1].weight.requires_grad_(False)
    g = G.gradient_flow_gate(frozen, batch(), "binary")
    assert not g.passed and "frozen" in g.detail and "layers.1.weight" in g.detail
    torch.manual_seed(0)
    g = G.gradient_flow_gate(Detached(SPEC), batch(), "binary")
    assert not g.passed and g.figure == 3 and "embeddings.0.weight" in g.detail and "layers.0.bias" in g.detail


class _WrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x * 2

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return g * 3        # the derivative of 2x is 2, not 3


class WrongBackward(TabularMLP):
    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return _WrongGrad.apply(super().forward(numeric, categorical))


def test_gradcheck_gate_catches_a_wrong_backward() -> None:
    small = Batch(*(t[:4] for t in (batch().numeric, batch().categorical, batch().target, batch().weight)))
    good = G.gradcheck_gate(mlp(), small, "binary")
    assert good.passed and good.figure < 1e-6
    torch.manual_seed(0)
    bad = G.gradcheck_gate(WrongBackward(SPEC), small, "binary")
    assert not bad.passed and bad.figure > 0.1


def test_overfit_gate_within_and_beyond_its_step_budget() -> None:
    b = batch(32)
    g = G.overfit_gate(mlp(), b, "binary", target=0.01, max_steps=500, lr=1e-2)
    assert g.passed and g.figure < 0.01
    assert not G.overfit_gate(mlp(), b, "binary", target=0.01, max_steps=2, lr=1e-2).passed


def test_training_gates() -> None:
    assert G.nonfinite_gate(None, 100).passed and not G.nonfinite_gate("non-finite loss nan at step 3", 3).passed
    assert G.grad_norm_gate(5.0, 1.0, 100.0, None).passed
    assert not G.grad_norm_gate(500.0, 1.0, 100.0, "epoch 1, step 4").passed
    assert G.loss_decrease_gate(0.69, 0.3, 3, 0.99).passed and not G.loss_decrease_gate(0.69, 0.69, 3, 0.99).passed
    assert G.early_stopping_gate(0.7, 0.2, 5, 9, True).passed and not G.early_stopping_gate(0.7, 0.7, 1, 4, True).passed
    assert G.baseline_gate("regression", 1.0, 1.2, 0.0).passed and not G.baseline_gate("binary", 0.8, 0.85, 0.0).passed


# ----------------------------------------------------------------------------- champion vs challenger


def scores(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(float)
    strong, weak = y + rng.normal(0, 0.5, n), y + rng.normal(0, 1.5, n)
    return y, strong, weak, rng.random(n) < 0.3


def test_a_worse_challenger_is_rejected_and_a_better_one_promoted() -> None:
    y, strong, weak, _ = scores()
    worse = G.compare_champion("binary", y, strong, weak, n_resamples=500)
    g = G.champion_gate(worse)
    assert not g.passed and worse.improvement.high < 0
    better = G.compare_champion("binary", y, weak, strong, n_resamples=500)
    assert G.champion_gate(better).passed and better.improvement.low > 0
    json.dumps(better.to_dict(), allow_nan=False)


def test_a_segment_made_worse_blocks_promotion() -> None:
    y, strong, weak, seg = scores()
    mixed = np.where(seg, weak, strong + 0.0)     # better overall than a mediocre champion, broken on the segment
    champion = y + np.random.default_rng(9).normal(0, 0.8, len(y))
    c = G.compare_champion("binary", y, champion, mixed, segments={"seg": seg, "tiny": np.arange(len(y)) < 10},
                           n_resamples=500)
    assert c.improvement.low > 0
    g = G.champion_gate(c)
    assert not g.passed and "['seg']" in g.detail
    assert [s.note.startswith("skipped") for s in c.segments] == [False, True]


# ----------------------------------------------------------------------------- model file and config


def test_a_saved_model_loads_back_with_weights_only(tmp_path) -> None:
    df = frame(300)
    pre = Preprocessor.fit(df, SCHEMA)
    spec = ModuleSpec(pre.n_numeric, pre.cardinalities, pre.out_dim, (8,), 0.0)
    torch.manual_seed(0)
    model = TrainedModel(pre, spec, TabularMLP(spec).eval(), {"seed": 0})
    model.save(tmp_path / "v1")
    assert set(torch.load(tmp_path / "v1" / "weights.pt", weights_only=True)) == set(model.module.state_dict())
    back = TrainedModel.load(tmp_path / "v1")
    np.testing.assert_array_equal(back.predict(df), model.predict(df))
    assert back.preprocessor == pre and back.extra == {"seed": 0}
    assert set(back.predict_label(df)) <= {0, 1}


@pytest.mark.parametrize("kwargs, name", [({"epochs": 0}, "epochs"), ({"val_fraction": 1.5}, "val_fraction"),
                                          ({"dropout": 1.0}, "dropout"), ({"segment_margin": -1}, "segment_margin")])
def test_bad_config_raises_naming_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_bad_schema_and_spec_raise() -> None:
    with pytest.raises(ValueError, match="task"):
        TabularSchema("ranking", "y", numeric=("x",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features"):
        TabularSchema("binary", "y", numeric=("y",))
    with pytest.raises(ValueError, match="output_bias"):
        ModuleSpec(2, (), 3, output_bias=(0.0,))
