"""Config validation: clear errors naming the key path; durations; relative reference paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError, build_config, load_config, parse_duration


def model(**over: Any) -> dict[str, Any]:
    m = {"task": "binary_classification", "reference": "ref.parquet", "target": "y"}
    m.update(over)
    return m


def test_minimal_config_defaults(tmp_path: Path) -> None:
    cfg = build_config({"models": {"car-loan": model()}}, tmp_path)
    m = cfg.models["car-loan"]
    assert m.reference == tmp_path / "ref.parquet"
    assert m.window.size == 5000 and m.window.duration is None
    assert cfg.kafka.predictions_topic == "predictions" and cfg.kafka.labels_topic == "labels"
    assert cfg.join.ttl == 7 * 86400.0


def test_absolute_reference_kept(tmp_path: Path) -> None:
    ref = tmp_path / "data" / "r.csv"
    cfg = build_config({"models": {"m": model(reference=str(ref))}}, Path("/elsewhere"))
    assert cfg.models["m"].reference == ref


@pytest.mark.parametrize("data, key", [
    ({"models": {"car-loan": model(window={"size": 5})}}, "models.car-loan.window.size"),
    ({"models": {"car-loan": model(window={"size": 100, "duration": "1h"})}}, "models.car-loan.window"),
    ({"models": {"car-loan": model(window={})}}, "models.car-loan.window"),
    ({"models": {"car-loan": model(window={"duration": "soon"})}}, "models.car-loan.window.duration"),
    ({"models": {"car-loan": model(task="ranking")}}, "models.car-loan.task"),
    ({"models": {"car-loan": model(colour="red")}}, "models.car-loan.colour"),
    ({"models": {"car-loan": {"task": "regression", "reference": "r.csv"}}}, "models.car-loan.target"),
    ({"models": {}}, "models"),
    ({}, "models"),
    ({"models": {"m": model()}, "http": {"port": 70000}}, "http.port"),
    ({"models": {"m": model()}, "kafka": {"bootstrap": "x"}}, "kafka"),
    ({"models": {"m": model()}, "join": {"ttl": "-1d"}}, "join.ttl"),
    ({"models": {"m": model(drift={"alpha": 2})}}, "models.m.drift.alpha"),
])
def test_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config(data)
    lines = str(e.value).splitlines()
    assert any(line.startswith(key) for line in lines), str(e.value)


def test_every_problem_on_its_own_line() -> None:
    with pytest.raises(ConfigError) as e:
        build_config({"models": {"a": model(task="x"), "b": model(window={"size": 1})}, "http": {"port": -1}})
    lines = str(e.value).splitlines()
    assert len(lines) == 3
    assert {line.split(":")[0] for line in lines} == {"models.a.task", "models.b.window.size", "http.port"}


def test_security_passthrough_and_frozen() -> None:
    cfg = build_config({"models": {"m": model()}, "kafka": {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}})
    assert cfg.kafka.client_options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}
    with pytest.raises(Exception):
        cfg.kafka.group_id = "other"  # type: ignore[misc]


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        build_config(["models"])  # type: ignore[arg-type]


@pytest.mark.parametrize("value, seconds", [("1h", 3600.0), ("15m", 900.0), ("90s", 90.0), ("250ms", 0.25),
                                            ("7d", 604800.0), ("1w", 604800.0), (30, 30.0), ("2.5h", 9000.0)])
def test_parse_duration(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "h", "0s", "-1h", "1y", 0, -3, True])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    good = tmp_path / "ok.yaml"
    good.write_text("models:\n  m:\n    task: regression\n    reference: r.parquet\n    target: y\n"
                    "    window: {duration: 1h, allowed_lateness: 5m}\n")
    cfg = load_config(good)
    assert cfg.models["m"].reference == tmp_path / "r.parquet"
    assert (cfg.models["m"].window.duration, cfg.models["m"].window.allowed_lateness) == (3600.0, 300.0)
