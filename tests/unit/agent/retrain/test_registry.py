"""The model registry: numbered versions written whole, a promotion pointer replaced atomically,
weights read back only through ``torch.load(weights_only=True)``, concurrent readers and writers
(threads and processes) never seeing a half-written version, and the /models views."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agent.retrain import registry as registry_module
from agent.retrain.registry import ModelRegistry
from agent.retrain.tabular import ModuleSpec, Preprocessor, TabularMLP, TabularSchema, TrainedModel
from tests.support.data import data_file

FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
            "size_of_downpayment", "driver_tenure"]
ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(data_file("synthetic_car_loan_reference.csv"), nrows=600)


def make_model(frame: pd.DataFrame, seed: int) -> TrainedModel:
    schema = TabularSchema.from_frame(frame, "binary", "repaid", FEATURES)
    pre = Preprocessor.fit(frame, schema)
    torch.manual_seed(seed)
    spec = ModuleSpec(pre.n_numeric, pre.cardinalities, pre.out_dim, (16,), 0.0)
    return TrainedModel(pre, spec, TabularMLP(spec).eval(), {"seed": seed})


def report(auc: float, verdict: str = "promote") -> dict:
    return {"verdict": verdict, "healthy": True, "promote": verdict == "promote",
            "gates": [{"name": "data.shapes", "passed": True, "figure": 600, "threshold": 50, "detail": "ok"}],
            "metrics": {"holdout_roc_auc": auc, "improvement_low": float("nan")}}


def test_versions_are_numbered_described_and_load_back(tmp_path: Path, frame: pd.DataFrame) -> None:
    reg = ModelRegistry(tmp_path)
    a, b = make_model(frame, 1), make_model(frame, 2)
    v1 = reg.register("car-loan", a, report=report(0.91), manifest_sha256="ab" * 32, incident="inc-1", job="job-000001")
    saved = tmp_path / "saved"
    b.save(saved)
    v2 = reg.register("car-loan", saved, report=report(0.93, "reject"), incident="inc-2")
    assert (v1.version, v2.version) == ("v0001", "v0002")
    assert [v.version for v in reg.list("car-loan")] == ["v0001", "v0002"]
    assert reg.list("other") == [] and reg.models() == ["car-loan"]
    files = sorted(p.name for p in v1.path.iterdir())
    assert files == ["gates.json", "metrics.json", "model.json", "version.json", "weights.pt"]
    assert v1.metrics == {"holdout_roc_auc": 0.91, "improvement_low": None}      # strict JSON: NaN is null
    assert (v1.incident, v1.job, v1.manifest_sha256, v1.verdict) == ("inc-1", "job-000001", "ab" * 32, "promote")
    assert v2.verdict == "reject" and v2.created >= v1.created
    assert reg.gates("car-loan", "v0001")["gates"][0]["name"] == "data.shapes"

    assert reg.promoted("car-loan") is None
    with pytest.raises(LookupError, match="no promoted version"):
        reg.load("car-loan")
    reg.promote("car-loan", "v0002")
    assert reg.promoted("car-loan") == "v0002"
    rows = frame.iloc[:50]
    np.testing.assert_array_equal(reg.load("car-loan").predict(rows), b.predict(rows))
    np.testing.assert_array_equal(reg.load("car-loan", "v0001").predict(rows), a.predict(rows))
    pointer = json.loads((tmp_path / "models" / "car-loan" / "PROMOTED").read_text())
    assert pointer["version"] == "v0002" and pointer["previous"] is None

    with pytest.raises(LookupError):
        reg.promote("car-loan", "v0009")
    with pytest.raises(LookupError):
        reg.load("car-loan", "v0009")
    with pytest.raises(ValueError, match="model name"):
        reg.register("../evil", a)
    with pytest.raises(ValueError, match="no saved model"):
        reg.register("car-loan", tmp_path / "nothing-here")
    assert [v.version for v in reg.list("car-loan")] == ["v0001", "v0002"]   # the failed writes left nothing


class Payload:
    """Anything but tensors: what an unsafe ``torch.load`` would unpickle (and run)."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.getcwd, ())


def test_weights_are_never_unpickled(tmp_path: Path, frame: pd.DataFrame) -> None:
    reg = ModelRegistry(tmp_path)
    v = reg.register("car-loan", make_model(frame, 1))
    with open(v.path / "weights.pt", "wb") as f:   # tamper with a stored version
        torch.save({"head.weight": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        reg.load("car-loan", "v0001")


def test_a_concurrent_reader_never_sees_a_half_written_version(tmp_path: Path, frame: pd.DataFrame) -> None:
    reg = ModelRegistry(tmp_path)
    src = tmp_path / "src"
    make_model(frame, 1).save(src)
    weight_bytes = (src / "weights.pt").stat().st_size
    stop = threading.Event()
    seen: set[str] = set()
    problems: list[str] = []

    def reader() -> None:
        r = ModelRegistry(tmp_path)
        while not stop.is_set():
            for v in r.list("car-loan"):
                seen.add(v.version)
                names = {p.name for p in v.path.iterdir()}
                if names != {"gates.json", "metrics.json", "model.json", "version.json", "weights.pt"}:
                    problems.append(f"{v.version}: {sorted(names)}")
                elif (v.path / "weights.pt").stat().st_size != weight_bytes:
                    problems.append(f"{v.version}: short weights")
                json.loads((v.path / "model.json").read_text())
                json.loads((v.path / "gates.json").read_text())

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        # two writer processes and this thread, all at once: every version gets its own number
        code = ("import sys; from agent.retrain.registry import ModelRegistry; r = ModelRegistry(sys.argv[1])\n"
                "for i in range(6): r.register('car-loan', sys.argv[2], report={'metrics': {'i': i}}, job=sys.argv[3])")
        procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(src), f"p{k}"], cwd=ROOT)
                 for k in range(2)]
        for i in range(6):
            reg.register("car-loan", src, report={"metrics": {"i": i}}, job="thread")
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
        time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert problems == []
    versions = reg.list("car-loan")
    assert [v.version for v in versions] == [f"v{i:04d}" for i in range(1, 19)]
    assert sorted(v.job for v in versions) == ["p0"] * 6 + ["p1"] * 6 + ["thread"] * 6
    assert seen and seen <= {v.version for v in versions}
    assert not list((tmp_path / "models" / "car-loan").glob(".tmp-*"))


def test_the_promotion_pointer_is_replaced_atomically(tmp_path: Path, frame: pd.DataFrame,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ModelRegistry(tmp_path)
    src = tmp_path / "src"
    make_model(frame, 1).save(src)
    for _ in range(2):
        reg.register("car-loan", src)
    reg.promote("car-loan", "v0001")
    stop = threading.Event()
    read: list[str | None] = []
    errors: list[BaseException] = []

    def reader() -> None:
        r = ModelRegistry(tmp_path)
        while not stop.is_set():
            try:
                read.append(r.promoted("car-loan"))
            except BaseException as e:  # a torn pointer would be a JSON error here
                errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(200):
            reg.promote("car-loan", "v0002" if i % 2 == 0 else "v0001")
    finally:
        stop.set()
        t.join()
    assert errors == [] and read and set(read) <= {"v0001", "v0002"}
    assert reg.promoted("car-loan") == "v0001"

    # a crash between writing the new pointer and renaming it: the old pointer stands, no debris
    def crash(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(registry_module.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        reg.promote("car-loan", "v0002")
    monkeypatch.undo()
    assert reg.promoted("car-loan") == "v0001"
    assert sorted(p.name for p in (tmp_path / "models" / "car-loan").iterdir()) == ["PROMOTED", "v0001", "v0002"]
    assert json.loads((tmp_path / "models" / "car-loan" / "PROMOTED").read_text())["version"] == "v0001"


def test_a_crashed_writers_leftovers_are_invisible_and_swept(tmp_path: Path, frame: pd.DataFrame) -> None:
    reg = ModelRegistry(tmp_path)
    src = tmp_path / "src"
    make_model(frame, 1).save(src)
    half = tmp_path / "models" / "car-loan" / ".tmp-deadbeef"
    half.mkdir(parents=True)
    (half / "weights.pt").write_bytes(b"\0" * 10)           # a writer died here
    assert reg.list("car-loan") == []
    old = time.time() - 7200
    os.utime(half, (old, old))
    assert reg.register("car-loan", src).version == "v0001"
    assert not half.exists()


def test_the_models_views(tmp_path: Path, frame: pd.DataFrame) -> None:
    reg = ModelRegistry(tmp_path)
    assert reg.get("") == (200, [])
    src = tmp_path / "src"
    make_model(frame, 1).save(src)
    reg.register("car-loan", src, report=report(0.91), incident="inc-1")
    reg.register("car-loan", src, report=report(0.95))
    reg.register("fraud", src, report=report(0.7, "reject"))
    reg.promote("car-loan", "v0002")
    status, body = reg.get("")
    assert status == 200 and body == [
        {"model": "car-loan", "promoted": "v0002", "versions": 2, "latest": "v0002"},
        {"model": "fraud", "promoted": None, "versions": 1, "latest": "v0001"}]
    status, body = reg.get("car-loan")
    assert status == 200 and body["promoted"] == "v0002"
    rows = [(v["version"], v["promoted"], v["metrics"]["holdout_roc_auc"], v["incident"]) for v in body["versions"]]
    assert rows == [("v0001", False, 0.91, "inc-1"), ("v0002", True, 0.95, None)]
    status, body = reg.get("car-loan/v0001")
    assert status == 200 and body["report"]["gates"][0]["passed"] is True and body["promoted"] is False
    json.dumps(reg.get("car-loan"), allow_nan=False)
    for rest in ("nope", "..", "car-loan/v0009", "car-loan/latest", "car-loan/v0001/x"):
        assert reg.get(rest)[0] == 404, rest
