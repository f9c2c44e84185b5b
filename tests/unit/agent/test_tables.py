"""agent.tables: pyarrow reads of CSV and Parquet give what pandas' readers give a drift check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.api.types import is_numeric_dtype

from agent import tables


def _values(s: pd.Series) -> list:
    return s.astype(object).where(s.notna(), None).tolist()


def _assert_like_pandas(path: Path) -> pd.DataFrame:
    ours, theirs = tables.read_frame(path), pd.read_csv(path, low_memory=False)  # one type per column
    assert list(ours.columns) == list(theirs.columns) == tables.column_names(path)
    for c in theirs.columns:
        assert is_numeric_dtype(ours[c]) == is_numeric_dtype(theirs[c]), (c, ours[c].dtype, theirs[c].dtype)
        assert _values(ours[c]) == _values(theirs[c]), c
    return ours


def test_csv_dtypes_and_nulls_match_pandas(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes(
        "\ufeffi,f,s,d,ts,t,b,empty,int_na,quoted\n"
        '1, 1.5,NA,2024-01-01,2024-01-01T10:00:00,10:00:00,True,,1,"a\nb"\n'
        '2,nan,x,2024-01-02,2024-01-02T10:00:00,11:00:00,False,,,"c,d"\n'
        '3,-inf,null,2024-01-03,2024-01-03T10:00:00,12:00:00,True,,3,""\n'.encode())
    ours = _assert_like_pandas(p)
    assert ours["int_na"].dtype == np.float64 and ours["empty"].dtype == np.float64
    assert ours["d"].tolist() == ["2024-01-01", "2024-01-02", "2024-01-03"]  # dates stay text, as in pandas


def test_late_type_change_and_quoted_newlines_past_the_first_block(tmp_path: Path) -> None:
    n = 700_000  # > one 4 MiB block
    p = tmp_path / "big.csv"
    with open(p, "w") as f:
        f.write("n,s\n")
        f.write("".join(f"{i % 1000},v{i % 7}\n" for i in range(n)))
        f.write('oops,"line\nbreak"\n7,v1\n')
    ours = _assert_like_pandas(p)
    assert not is_numeric_dtype(ours["n"]) and ours["s"].iloc[-2] == "line\nbreak"


def test_column_subset_and_categoricals(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"], "c": [1, 2, 3]}).to_csv(p, index=False)
    f = tables.read_frame(p, ["c", "b"])
    assert list(f.columns) == ["c", "b"] and isinstance(f["b"].dtype, pd.CategoricalDtype)
    with pytest.raises(ValueError):
        tables.read_frame(p, ["nope"])


def test_parquet_batches_and_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=2500), "s": rng.choice(["a", "b", None], 2500)},
                         index=pd.RangeIndex(2500, name="row"))
    p = tmp_path / "t.parquet"
    frame.reset_index().set_index("row").to_parquet(p, row_group_size=1000)
    assert tables.column_names(p) == ["x", "s"]
    whole = tables.read_frame(p, ["x", "s"])
    parts = list(tables.iter_frames(p, ["x", "s"], batch_rows=900))
    assert len(parts) > 1 and max(len(b) for b in parts) <= 900 and sum(len(b) for b in parts) == 2500
    assert _values(pd.concat([b["s"].astype(object) for b in parts], ignore_index=True)) == _values(whole["s"])
    assert np.array_equal(np.concatenate([b["x"].to_numpy() for b in parts]), whole["x"].to_numpy(), equal_nan=True)
    assert isinstance(whole["s"].dtype, pd.CategoricalDtype) and _values(whole["s"]) == _values(frame["s"])


@pytest.mark.parametrize("name,content,match", [
    ("missing.csv", None, "not found"),
    ("t.txt", "a\n1\n", "unsupported format"),
    ("empty.csv", "", "empty CSV"),
    ("dup.csv", "a,a\n1,2\n", "duplicate column"),
    ("bad.parquet", "not parquet", "Parquet"),
])
def test_errors_are_value_errors_naming_the_file(tmp_path: Path, name: str, content: str | None, match: str) -> None:
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        tables.column_names(p)
        tables.read_frame(p)
