"""Fast reads of whole data files for one-shot commands (``driftwarden check``).

CSV goes through pyarrow's multithreaded reader, Parquet through pyarrow, each limited to the
columns asked for, and comes out as a pandas frame with the dtypes ``pandas.read_csv`` /
``read_parquet`` would give a drift check: numbers as int64/float64 (float64 where a column has
nulls), pandas' default null tokens (``""``, ``NA``, ``null``, ``nan``, ...) as nulls in every
column, dates and times left as strings (pandas does not parse them either), an all-empty column
as float64. String columns with few distinct values (``DICT_MAX_CARDINALITY`` per block) arrive
as pandas categoricals, which the detectors' binners count by code instead of hashing every
value. JSON lines are read with pandas.

Imports are local to the functions: ``import agent.tables`` costs nothing, pyarrow and pandas are
loaded when a file is read.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["column_names", "import_readers", "read_arrow", "read_frame", "iter_frames", "is_parquet", "PANDAS_NA_VALUES", "DICT_MAX_CARDINALITY"]

# pandas.read_csv's default na_values (pandas._libs.parsers.STR_NA_VALUES), for pyarrow
PANDAS_NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
DICT_MAX_CARDINALITY = 1024
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES + JSON_SUFFIXES:
        raise ValueError(f"{path}: unsupported format {suffix!r} (use .csv, .parquet/.pq or .jsonl)")
    return suffix


def column_names(path: Path | str) -> list[str]:
    """The columns of a data file, read from its header (CSV) or schema (Parquet) only."""
    p = Path(path)
    suffix = _suffix(p)
    if suffix in CSV_SUFFIXES:
        try:
            with open(p, newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), None)
        except (UnicodeDecodeError, csv.Error) as e:
            raise ValueError(f"{p}: cannot read the CSV header: {e}") from None
        if not header:
            raise ValueError(f"{p}: empty CSV file (no header)")
        _check_unique(p, header)
        return header
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(p)
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: cannot read the Parquet schema: {e}") from None
        index = _pandas_index_columns(schema)
        return [n for n in schema.names if n not in index]
    return [str(c) for c in read_frame(p).columns]


def read_arrow(path: Path | str, columns: Sequence[str] | None = None) -> pa.Table | None:
    """A CSV or Parquet file (or only ``columns``) as an Arrow table, without importing pandas;
    ``None`` for JSON lines (pandas reads those: :func:`read_frame`). pyarrow releases the GIL
    while it reads, so a thread can run this while the main thread imports."""
    p = Path(path)
    suffix = _suffix(p)
    cols = None if columns is None else list(columns)
    if suffix in CSV_SUFFIXES:
        return _read_csv(p, cols)
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p, columns=cols, use_threads=True, read_dictionary=_string_columns(p, cols))
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{p}: cannot read Parquet: {e}") from None
    return None


def read_frame(path: Path | str, columns: Sequence[str] | None = None,
               table: pa.Table | None = None) -> pd.DataFrame:
    """The whole file (or only ``columns``, in that order) as a pandas frame; ``table``: what
    :func:`read_arrow` already read of it."""
    p = Path(path)
    suffix = _suffix(p)
    cols = None if columns is None else list(columns)
    if suffix in CSV_SUFFIXES + PARQUET_SUFFIXES:
        return _to_pandas(table if table is not None else read_arrow(p, cols))
    import pandas as pd

    try:
        frame = pd.read_json(p, lines=suffix != ".json", precise_float=True)  # correctly rounded, as CSV
    except ValueError as e:
        raise ValueError(f"{p}: cannot read JSON: {e}") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame if cols is None else frame[cols]


def import_readers(*paths: Path | str) -> None:
    """Import the pyarrow readers these files need, here: a thread that then reads them
    imports nothing while the calling thread goes on importing (no import-lock interplay)."""
    suffixes = {Path(p).suffix.lower() for p in paths}
    if suffixes & set(CSV_SUFFIXES):
        import pyarrow.csv  # noqa: F401
    if suffixes & set(PARQUET_SUFFIXES):
        import pyarrow.parquet  # noqa: F401


def is_parquet(path: Path | str) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def iter_frames(path: Path | str, columns: Sequence[str] | None = None,
                batch_rows: int = 1 << 20) -> Iterator[pd.DataFrame]:
    """The file as frames of at most ``batch_rows`` rows (Parquet: read batch by batch, so memory
    follows the batch; CSV and JSON are read whole, then sliced without copying)."""
    p = Path(path)
    if _suffix(p) in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(p, read_dictionary=_string_columns(p, columns))
            batches = pf.iter_batches(batch_size=batch_rows, columns=None if columns is None else list(columns),
                                      use_threads=True)
            import pyarrow as pa

            empty = True
            for batch in batches:
                empty = False
                yield _to_pandas(pa.Table.from_batches([batch]))
            if empty:
                yield _to_pandas(pf.schema_arrow.empty_table().select(list(columns) if columns is not None
                                                                      else pf.schema_arrow.names))
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{p}: cannot read Parquet: {e}") from None
        return
    frame = read_frame(p, columns)
    if len(frame) <= batch_rows:
        yield frame
        return
    for start in range(0, len(frame), batch_rows):
        yield frame.iloc[start: start + batch_rows]


def _check_unique(path: Path, names: Sequence[str]) -> None:
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise ValueError(f"{path}: duplicate column names {dup}")


def _string_columns(path: Path, columns: Sequence[str] | None) -> list[str]:
    """String columns of a Parquet file, read as dictionaries (pandas categoricals: the binners
    count codes; Parquet usually stores strings dictionary-encoded, so this is cheap too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    wanted = set(schema.names if columns is None else columns)
    return [f.name for f in schema if f.name in wanted and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]


def _pandas_index_columns(schema: pa.Schema) -> set[str]:
    """Columns pandas stored its index in (``read_parquet`` turns them back into the index)."""
    meta = schema.pandas_metadata or {}
    return {c for c in meta.get("index_columns", []) if isinstance(c, str)}


def _read_csv(path: Path, columns: list[str] | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def read(newlines_in_values: bool, column_types: dict[str, pa.DataType] | None = None) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(newlines_in_values=newlines_in_values),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, null_values=PANDAS_NA_VALUES, strings_can_be_null=True,
                quoted_strings_can_be_null=True, auto_dict_encode=True,
                auto_dict_max_cardinality=DICT_MAX_CARDINALITY, column_types=column_types),
        )

    try:
        newlines = False
        try:
            table = read(newlines)
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):
                raise
            newlines = True  # quoted newlines split across blocks: the slower, exact chunker
            table = read(newlines)
        temporal = [f.name for f in table.schema if pa.types.is_temporal(f.type)]
        if temporal:  # pandas leaves dates and times as text: read those columns as strings
            table = read(newlines, {n: pa.string() for n in temporal})
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path}: cannot read CSV: {e}") from None
    except pa.ArrowKeyError as e:  # include_columns naming a column the file lacks
        raise ValueError(f"{path}: {e}") from None
    _check_unique(path, table.column_names)
    return table


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    import pyarrow as pa

    nulls = [i for i, f in enumerate(table.schema) if pa.types.is_null(f.type)]
    for i in nulls:  # an all-empty column: float64 NaN, as pandas reads it
        table = table.set_column(i, table.schema.field(i).name,
                                 pa.nulls(table.num_rows, pa.float64()))
    return table.to_pandas(split_blocks=True)
