"""``driftwarden check``: exit codes, the JSON report, missing and unexpected columns, CSV and
Parquet inputs, and (as a whole process) what it imports."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent import tables
from agent.cli import EXIT_DRIFT, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[3]
FEATURE_KEYS = {"drifted", "method", "statistic", "p_value", "effect_size"}


def _frame(n: int, seed: int, shift: float = 0.0, mix: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame({
        "id": np.arange(n),
        "x": x,
        "k": rng.integers(0, 50, n),
        "c": rng.choice(["a", "b", "c"], n, p=[0.5 - mix, 0.3, 0.2 + mix]),
        "flag": rng.random(n) < 0.3,
    })


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=700)
    return path


def _check(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main(["check", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _json(capsys: pytest.CaptureFixture[str], ref: Path, cur: Path, *extra: str) -> tuple[int, dict]:
    rc, out, err = _check(capsys, "--reference", ref, "--current", cur, "--format", "json", *extra)
    assert rc != EXIT_USAGE, err
    return rc, json.loads(out)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "ref": _write(_frame(3000, 1), tmp_path / "ref.csv"),
        "same": _write(_frame(2000, 2), tmp_path / "same.csv"),
        "drift": _write(_frame(2000, 3, shift=0.6, mix=0.2), tmp_path / "drift.csv"),
    }


def test_no_drift_exits_0_with_the_design_json(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    rc, d = _json(capsys, files["ref"], files["same"])
    assert rc == EXIT_OK
    assert d["drifted"] is False and d["dataset_drift_share"] == 0.0
    assert set(d) == {"drifted", "dataset_drift_share", "features", "missing_columns", "unexpected_columns"}
    assert list(d["features"]) == ["x", "k", "c", "flag"]  # "id" is excluded by default
    for f in d["features"].values():
        assert set(f) == FEATURE_KEYS and f["drifted"] is False
    assert d["features"]["x"]["method"] == "ks" and d["features"]["c"]["method"] == "chi2"
    assert d["features"]["flag"]["method"] == "chi2"  # booleans are categorical
    assert d["missing_columns"] == [] and d["unexpected_columns"] == []


def test_drift_exits_1_and_names_the_drifted_features(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    rc, d = _json(capsys, files["ref"], files["drift"])
    assert rc == EXIT_DRIFT and d["drifted"] is True
    assert {n for n, f in d["features"].items() if f["drifted"]} == {"x", "c"}
    assert d["dataset_drift_share"] == 0.5
    assert d["features"]["x"]["p_value"] < 1e-6 and d["features"]["x"]["effect_size"] > 0.1


def test_table_format(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    rc, out, _ = _check(capsys, "--reference", files["ref"], "--current", files["drift"])
    assert rc == EXIT_DRIFT
    lines = out.splitlines()
    assert "(3000 rows)" in lines[0] and "(2000 rows)" in lines[0]
    rows = {ln.split()[0]: ln for ln in lines[2:-1]}
    assert rows["x"].endswith("DRIFT") and rows["k"].endswith("ok")
    assert lines[-1].startswith("2 of 4 features drifted (share 0.50")


def test_missing_reference_feature_exits_1_and_unexpected_column_is_listed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ref = _write(_frame(2000, 1)[["x", "c"]].rename(columns={"x": "a", "c": "b"}), tmp_path / "ref.csv")
    cur = _write(_frame(2000, 2)[["x", "c"]].rename(columns={"x": "a", "c": "new"}), tmp_path / "cur.csv")
    rc, d = _json(capsys, ref, cur)
    assert rc == EXIT_DRIFT  # no feature drifted, but a reference feature is missing
    assert d["drifted"] is False and list(d["features"]) == ["a"]
    assert d["missing_columns"] == ["b"] and d["unexpected_columns"] == ["new"]

    rc, out, _ = _check(capsys, "--reference", ref, "--current", cur)
    assert rc == EXIT_DRIFT
    rows = {ln.split()[0]: ln for ln in out.splitlines()[2:]}
    assert rows["b"].endswith("MISSING from current")
    assert rows["new"].endswith("unexpected (not in reference)")
    assert "1 reference feature missing from the current data: b" in out
    assert "1 unexpected column in the current data (not in the reference): new" in out


def test_unexpected_columns_alone_do_not_fail(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                                              tmp_path: Path) -> None:
    cur = _frame(2000, 2)
    cur["extra"] = 1.0
    cur["timestamp"] = "2024-01-01T00:00:00Z"  # excluded by default: neither compared nor unexpected
    rc, d = _json(capsys, files["ref"], _write(cur, tmp_path / "cur.csv"))
    assert rc == EXIT_OK and d["unexpected_columns"] == ["extra"] and d["missing_columns"] == []


def test_features_option_limits_the_check(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                                          tmp_path: Path) -> None:
    rc, d = _json(capsys, files["ref"], files["drift"], "--features", "k,flag")
    assert rc == EXIT_OK and list(d["features"]) == ["k", "flag"]
    cur = _write(_frame(2000, 2).drop(columns=["flag"]), tmp_path / "cur.csv")
    rc, d = _json(capsys, files["ref"], cur, "--features", "k,flag")
    assert rc == EXIT_DRIFT and d["missing_columns"] == ["flag"] and list(d["features"]) == ["k"]


def test_parquet_input_equals_csv_input(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ref, cur = _frame(3000, 1), _frame(2500, 3, shift=0.2, mix=0.05)
    csv_ref, csv_cur = _write(ref, tmp_path / "r.csv"), _write(cur, tmp_path / "c.csv")
    pq_ref, pq_cur = _write(ref, tmp_path / "r.parquet"), _write(cur, tmp_path / "c.pq")
    rc_csv, d_csv = _json(capsys, csv_ref, csv_cur)
    rc_pq, d_pq = _json(capsys, pq_ref, pq_cur)
    assert rc_csv == rc_pq == EXIT_DRIFT
    assert d_pq == d_csv
    # the Parquet current is read batch by batch; merged summaries give the same report
    monkeypatch.setattr(tables, "iter_frames", functools.partial(tables.iter_frames, batch_rows=600))
    assert _json(capsys, pq_ref, pq_cur) == (rc_pq, d_pq)
    # mixed inputs, and a Parquet written with its index (pandas metadata): the index is no column
    cur.set_index("id").rename_axis("row").to_parquet(tmp_path / "indexed.parquet")
    rc, d = _json(capsys, csv_ref, tmp_path / "indexed.parquet")
    assert (rc, d) == (rc_csv, d_csv)
    rows = cur.astype(object).where(cur.notna(), None).to_dict("records")  # json: every digit kept
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _json(capsys, pq_ref, tmp_path / "c.jsonl") == (rc_csv, d_csv)


def test_large_current_past_the_sample_cap(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Past 100,000 values KS runs on the reference bins; batches merge to the same report."""
    ref, cur = _write(_frame(5000, 1), tmp_path / "r.parquet"), _frame(130_000, 2)
    rc_csv, d_csv = _json(capsys, ref, _write(cur, tmp_path / "c.csv"))
    rc_pq, d_pq = _json(capsys, ref, _write(cur, tmp_path / "c.parquet"))
    assert rc_csv == rc_pq == EXIT_OK and d_csv == d_pq


@pytest.mark.parametrize("case", ["no_file", "bad_suffix", "disjoint", "unknown_feature", "type_change", "empty",
                                  "duplicate_header", "ref_all_null"])
def test_usage_and_data_errors_exit_2(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path,
                                      case: str) -> None:
    ref, cur, extra = files["ref"], files["same"], []
    if case == "no_file":
        cur = tmp_path / "nope.csv"
    elif case == "bad_suffix":
        cur = tmp_path / "cur.xlsx"
        cur.write_text("x\n1\n")
    elif case == "disjoint":
        cur = _write(pd.DataFrame({"other": [1, 2, 3]}), tmp_path / "cur.csv")
    elif case == "unknown_feature":
        extra = ["--features", "x,nope"]
    elif case == "type_change":
        frame = _frame(100, 2).astype({"x": object})
        frame.loc[3, "x"] = "n.a."
        cur = _write(frame, tmp_path / "cur.csv")
    elif case == "empty":
        cur = tmp_path / "cur.csv"
        cur.write_text("")
    elif case == "duplicate_header":
        cur = tmp_path / "cur.csv"
        cur.write_text("x,x,c\n1,2,a\n")
    elif case == "ref_all_null":
        ref = tmp_path / "ref.csv"
        ref.write_text("x,c\n,a\n,b\n")
    rc, out, err = _check(capsys, "--reference", ref, "--current", cur, *extra)
    assert rc == EXIT_USAGE and out == ""
    assert err.startswith("driftwarden check: ") and len(err.splitlines()) == 1
    if case == "type_change":
        assert "'x'" in err or "x (" in err
    if case == "disjoint":
        assert "no common columns" in err


def test_whole_process_exit_codes_and_lean_imports(files: dict[str, Path], tmp_path: Path) -> None:
    """As a process: the exit code reaches the shell, and a check imports neither the agent's
    configuration nor the concept/performance detectors."""
    probe = ("import sys, runpy\n"
             "sys.argv = ['driftwarden', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('agent.cli', run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    heavy = [m for m in ('agent.config', 'pydantic', 'detectors.concept', 'detectors.cbpe',\n"
             "             'detectors.performance', 'sklearn', 'torch') if m in sys.modules]\n"
             "    print('HEAVY', heavy, file=sys.stderr)\n    raise\n")
    for cur, want in ((files["same"], EXIT_OK), (files["drift"], EXIT_DRIFT), (tmp_path / "no.csv", EXIT_USAGE)):
        res = subprocess.run([sys.executable, "-c", probe, "check", "--reference", str(files["ref"]),
                              "--current", str(cur), "--format", "json"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert res.returncode == want, res.stderr
        assert "HEAVY []" in res.stderr, res.stderr
        if want != EXIT_USAGE:
            assert set(json.loads(res.stdout)) >= {"drifted", "missing_columns", "unexpected_columns"}
