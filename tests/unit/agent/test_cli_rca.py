"""`driftwarden rca` on files: the same analysis as the agent's, as JSON or the HTML page; exit 1
when a cause is named, 0 when none, 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from tests.support.planted import plant


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("rca-cli")
    out = {}
    for name in ("unit_bug", "clean"):
        sc = plant(name, "car_loan", seed=0, n_current=3000)
        sc.reference.to_parquet(tmp / "ref.parquet")
        sc.current.to_csv(tmp / f"{name}.csv", index=False)
        out[name] = tmp / f"{name}.csv"
    out["ref"] = tmp / "ref.parquet"
    return out


def args(files: dict[str, Path], current: str, *extra: str) -> list[str]:
    return ["rca", "--reference", str(files["ref"]), "--current", str(files[current]), "--target", "repaid",
            "--prediction", "y_pred", "--score", "y_score", "--segments", "salary_range", "--n-boot", "30", *extra]


def test_json_names_the_unit_bug_and_exits_1(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(files, "unit_bug")) == 1
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert (body["causes"][0]["cause"], body["causes"][0]["feature"]) == ("data_quality", "car_value")
    assert body["actions"][0]["action"] == "fix_pipeline" and "data_quality" in err


def test_html_report_to_a_file(files: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(args(files, "unit_bug", "--format", "html", "--output", str(page))) == 1
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'data-feature="car_value"' in text


def test_clean_replay_names_nothing_and_exits_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(files, "clean")) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["causes"] == [] and [a["action"] for a in body["actions"]] == ["none"]


def test_bad_input_exits_2_naming_it(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args(files, "clean")[:5], "--target", "no_such_column"]) == 2
    assert "no_such_column" in capsys.readouterr().err
    assert main(["rca", "--reference", "/nope.csv", "--current", str(files["clean"]), "--target", "repaid"]) == 2
