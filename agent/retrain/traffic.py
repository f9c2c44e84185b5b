"""The labelled-traffic store: settled windows' joined rows, one Parquet file per window.

Layout: ``state_dir/traffic/<model>/w<window_id:012d>.parquet``. Each file holds one window's
rows (any columns: id, timestamp, segments, features, prediction, score, label) and, in the
Parquet key-value metadata (key ``driftwarden.traffic``), the window id, its event time (seconds;
the window's end, or the newest value of ``time_column``) and its row count.

Exactly once across crashes. The file name is the window id, so a window is stored at most once
by construction; :meth:`TrafficStore.append` writes a temporary file in the same folder, fsyncs
it, renames it over the final name (``os.replace``, atomic) and fsyncs the folder. A SIGKILL
before the rename leaves only a temporary file (ignored by every reader, removed when a writer
opens the store); after it, the window is stored, and appending it again, as a crash-restart
replay does, is a no-op that returns False. So a window whose ``append`` returned is never lost
and no window is ever stored twice.

Retention (:meth:`TrafficStore.enforce_retention`): windows whose event time is older than
``now - max_age_s`` go, then the oldest (event time, then window id) until the store holds at most
``max_bytes``. Removal always takes a prefix of that order, so the newest removed
``(event_time_s, window_id)`` is written (atomically, before any file is unlinked) to
``retired.json``: a replayed window no newer than it is refused, since retention would drop it
first, and a retired window therefore never comes back.

One process writes a store (the agent); others may read it at the same time (a retraining job):
readers open it with ``readonly=True`` and skip a window that retention removed while they read.

Reading many windows (:meth:`TrafficStore.read`) unifies their schemas: a column missing or
all-null in one window is null there; a column whose type differs between windows becomes
float64 when every type is numeric, else text.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["StoredWindow", "TrafficStore", "META_KEY", "WINDOW_COLUMN", "to_arrow"]

META_KEY = b"driftwarden.traffic"
WINDOW_COLUMN = "__window__"
FORMAT = 1
_MAX_WINDOW = 10**12 - 1
_FILE = re.compile(r"^w(\d{12})\.parquet$")
_TEMP = re.compile(r"^\.w\d{12}\.parquet\.(\d+)\.[0-9a-f]+\.tmp$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STALE_TEMP_S = 3600.0


@dataclass(frozen=True, slots=True)
class StoredWindow:
    """One stored window: its id, event time (seconds), rows and file size."""

    window_id: int
    event_time_s: float
    rows: int
    bytes: int

    @property
    def order(self) -> tuple[float, int]:
        """Retention order: oldest first."""
        return (self.event_time_s, self.window_id)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _as_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA
                      or v is pd.NaT else str(v)).astype(object)


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table; object columns Arrow cannot type (mixed values) become text."""
    if any(not isinstance(c, str) for c in frame.columns):
        raise ValueError(f"column names must be strings, got {[c for c in frame.columns if not isinstance(c, str)]!r}")
    if frame.columns.has_duplicates:
        raise ValueError(f"duplicate column names: {sorted(frame.columns[frame.columns.duplicated()])!r}")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fixed = frame.copy()
        for c in frame.columns:
            if frame[c].dtype == object:
                try:
                    pa.array(frame[c], from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    fixed[c] = _as_text(frame[c])
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _seconds(values: pd.Series) -> np.ndarray:
    """Event times as float seconds: numbers as they are, datetimes (naive read as UTC) and text parsed."""
    if pd.api.types.is_bool_dtype(values):
        raise ValueError("a boolean column is not a time")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    out = np.full(len(values), np.nan)
    ok = stamps.notna().to_numpy()
    out[ok] = stamps[ok].map(pd.Timestamp.timestamp).to_numpy(dtype=np.float64)
    return out


def _group(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return str(t)


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_dictionary(t):
        return column.cast(t.value_type)
    if pa.types.is_large_string(t):
        return column.cast(pa.string())
    return column


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose schemas may differ (missing, all-null or retyped columns)."""
    tables = [pa.table({n: _plain(t.column(n)) for n in t.column_names}) for t in tables]
    types: dict[str, set[pa.DataType]] = {}
    for t in tables:
        for f in t.schema:
            if not pa.types.is_null(f.type):
                types.setdefault(f.name, set()).add(f.type)
    target = {}
    for name, ts in types.items():
        if len(ts) > 1:
            target[name] = pa.float64() if {_group(x) for x in ts} == {"number"} else pa.string()
    if target:
        fixed = []
        for t in tables:
            for name, to in target.items():
                if name in t.column_names and not pa.types.is_null(t.schema.field(name).type):
                    i = t.column_names.index(name)
                    t = t.set_column(i, name, pc.cast(t.column(name), to))
            fixed.append(t)
        tables = fixed
    return pa.concat_tables(tables, promote_options="permissive")


class TrafficStore:
    """Parquet files of settled windows' labelled rows for one model (see the module docstring).

    ``max_age_s`` (event-time seconds) and ``max_bytes`` bound what :meth:`enforce_retention`
    keeps; None means no bound. ``time_column`` is where :meth:`append` finds a window's event time
    when none is passed. ``readonly`` stores never write, clean or remove anything.

    >>> import tempfile
    >>> store = TrafficStore(Path(tempfile.mkdtemp()), "car-loan", max_age_s=None, max_bytes=None)
    >>> store.append(3, pd.DataFrame({"id": ["a", "b"], "timestamp": [10.0, 11.0], "label": [0, 1]}))
    True
    >>> store.append(3, pd.DataFrame({"id": ["a"], "timestamp": [10.0], "label": [0]}))  # replayed
    False
    >>> store.windows(), len(store.read())
    ([3], 2)
    """

    def __init__(self, state_dir: str | Path, model: str, max_age_s: float | None = None,
                 max_bytes: int | None = None, *, time_column: str = "timestamp", readonly: bool = False) -> None:
        if not (isinstance(model, str) and _MODEL.match(model)):
            raise ValueError(f"model must be a file-name-safe name ([A-Za-z0-9._-], not starting with '.'), "
                             f"got {model!r}")
        if max_age_s is not None and not (isinstance(max_age_s, (int, float)) and not isinstance(max_age_s, bool)
                                          and math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError(f"max_age_s must be a positive number of seconds or None, got {max_age_s!r}")
        if max_bytes is not None and not (isinstance(max_bytes, int) and not isinstance(max_bytes, bool)
                                          and max_bytes >= 0):
            raise ValueError(f"max_bytes must be an int >= 0 or None, got {max_bytes!r}")
        self.state_dir = Path(state_dir)
        self.model = model
        self.max_age_s = None if max_age_s is None else float(max_age_s)
        self.max_bytes = max_bytes
        self.time_column = time_column
        self.readonly = readonly
        self.directory = self.state_dir / "traffic" / model
        self._known: dict[str, StoredWindow] = {}   # file name -> its footer facts (files never change)
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._clean_temps()
            self._remove(self._retired_files())

    # ------------------------------------------------------------------ writing

    def append(self, window_id: int, frame: pd.DataFrame, *, event_time_s: float | None = None) -> bool:
        """Store one window's rows; False (nothing written) when the window is already stored or no
        newer than a window retention removed. ``event_time_s`` defaults to the newest value of
        ``time_column``. Returns only once the file is durable."""
        self._writable()
        if (isinstance(window_id, bool) or not isinstance(window_id, (int, np.integer))
                or not 0 <= window_id <= _MAX_WINDOW):
            raise ValueError(f"window_id must be an int in [0, {_MAX_WINDOW}], got {window_id!r}")
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
        window_id = int(window_id)
        path = self._path(window_id)
        if path.exists():
            return False
        t = self._event_time(frame) if event_time_s is None else float(event_time_s)
        if not math.isfinite(t):
            raise ValueError(f"event_time_s must be finite, got {t!r}")
        retired = self._retired()
        if retired is not None and (t, window_id) <= retired:
            return False
        table = to_arrow(frame)
        meta = {"format": FORMAT, "model": self.model, "window_id": window_id, "event_time_s": t,
                "rows": len(frame)}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
        tmp = self.directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "wb") as f:
                pq.write_table(table, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        self._known[path.name] = StoredWindow(window_id, t, len(frame), path.stat().st_size)
        return True

    def enforce_retention(self, now_s: float) -> list[int]:
        """Remove windows older than ``now_s - max_age_s``, then the oldest until at most
        ``max_bytes`` remain; returns the removed window ids, oldest first."""
        self._writable()
        stored = self.info()
        keep_from = 0
        if self.max_age_s is not None:
            cutoff = float(now_s) - self.max_age_s
            while keep_from < len(stored) and stored[keep_from].event_time_s < cutoff:
                keep_from += 1
        if self.max_bytes is not None:
            total = sum(w.bytes for w in stored[keep_from:])
            while keep_from < len(stored) and total > self.max_bytes:
                total -= stored[keep_from].bytes
                keep_from += 1
        dropped = stored[:keep_from]
        if not dropped:
            return []
        mark = max([dropped[-1].order] + ([r] if (r := self._retired()) is not None else []))
        self._write_retired(mark)
        self._remove([self._path(w.window_id) for w in dropped])
        return [w.window_id for w in dropped]

    # ------------------------------------------------------------------ reading

    def info(self) -> list[StoredWindow]:
        """The stored windows, oldest first (event time, then id)."""
        if not self.directory.is_dir():
            return []
        names = set()
        for entry in os.scandir(self.directory):
            if _FILE.match(entry.name):
                names.add(entry.name)
        for gone in set(self._known) - names:
            del self._known[gone]
        out = []
        for name in names:
            w = self._known.get(name)
            if w is None:
                try:
                    w = self._footer(self.directory / name)
                except FileNotFoundError:
                    continue
                self._known[name] = w
            out.append(w)
        retired = self._retired()
        return sorted((w for w in out if retired is None or w.order > retired), key=lambda w: w.order)

    def windows(self) -> list[int]:
        """Stored window ids, ascending."""
        return sorted(w.window_id for w in self.info())

    def bytes(self) -> int:
        """Bytes of the stored windows' files."""
        return sum(w.bytes for w in self.info())

    def read(self, since_s: float | None = None, windows: Iterable[int] | None = None,
             columns: Sequence[str] | None = None, *, window_column: str | None = WINDOW_COLUMN) -> pd.DataFrame:
        """Rows of the stored windows (those with event time >= ``since_s``, and/or the listed
        ``windows``: KeyError for one not stored), in window-id order, with their window id in
        ``window_column`` (None: no such column). ``columns`` selects columns (missing ones come
        back all-null)."""
        stored = self.info()
        if since_s is not None:
            stored = [w for w in stored if w.event_time_s >= since_s]
        explicit = windows is not None
        if explicit:
            wanted = {int(w) for w in windows}  # type: ignore[union-attr]
            missing = wanted - {w.window_id for w in self.info()}
            if missing:
                raise KeyError(f"windows not stored for model {self.model!r}: {sorted(missing)[:20]!r}")
            stored = [w for w in stored if w.window_id in wanted]
        if columns is not None:
            columns = list(columns)
            if window_column is not None and window_column in columns:
                raise ValueError(f"column {window_column!r} is the window column; name another window_column")
        tables, ids = [], []
        for w in sorted(stored, key=lambda w: w.window_id):
            path = self._path(w.window_id)
            try:
                if columns is None:
                    t = pq.read_table(path)
                else:
                    present = set(pq.read_schema(path).names)
                    t = pq.read_table(path, columns=[c for c in columns if c in present])
            except FileNotFoundError:
                if explicit:
                    raise KeyError(f"window {w.window_id} of model {self.model!r} was removed while reading") from None
                continue
            tables.append(t.replace_schema_metadata(None))
            ids.append(np.full(t.num_rows, w.window_id, dtype=np.int64))
        if not tables:
            names = (columns if columns is not None else []) + ([window_column] if window_column else [])
            return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == window_column else object) for c in names})
        frame = _concat(tables).to_pandas()
        if window_column is not None:
            if window_column in frame.columns:
                raise ValueError(f"the stored rows have a {window_column!r} column; name another window_column")
            frame[window_column] = np.concatenate(ids)
        if columns is not None:
            for c in columns:
                if c not in frame.columns:
                    frame[c] = None
            frame = frame[columns + ([window_column] if window_column is not None else [])]
        return frame

    # ------------------------------------------------------------------ internals

    def _path(self, window_id: int) -> Path:
        return self.directory / f"w{window_id:012d}.parquet"

    def _writable(self) -> None:
        if self.readonly:
            raise PermissionError(f"traffic store {self.directory} was opened readonly")

    def _event_time(self, frame: pd.DataFrame) -> float:
        if self.time_column not in frame.columns:
            raise ValueError(f"event_time_s not given and the frame has no {self.time_column!r} column")
        t = _seconds(frame[self.time_column])
        if not np.isfinite(t).any():
            raise ValueError(f"event_time_s not given and column {self.time_column!r} holds no usable time")
        return float(np.nanmax(t))

    @staticmethod
    def _footer(path: Path) -> StoredWindow:
        try:
            meta = json.loads((pq.read_schema(path).metadata or {})[META_KEY])
        except FileNotFoundError:
            raise
        except (KeyError, ValueError, OSError) as e:   # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"{path} is not a readable traffic-store window file: {e}") from e
        return StoredWindow(int(meta["window_id"]), float(meta["event_time_s"]), int(meta["rows"]), path.stat().st_size)

    def _retired(self) -> tuple[float, int] | None:
        try:
            d = json.loads((self.directory / "retired.json").read_text())
        except FileNotFoundError:
            return None
        return (float(d["event_time_s"]), int(d["window_id"]))

    def _write_retired(self, mark: tuple[float, int]) -> None:
        path = self.directory / "retired.json"
        tmp = self.directory / f".retired.json.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps({"event_time_s": mark[0], "window_id": mark[1]}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)

    def _retired_files(self) -> list[Path]:
        retired = self._retired()
        if retired is None:
            return []
        out = []
        for entry in os.scandir(self.directory):
            if _FILE.match(entry.name):
                try:
                    w = self._footer(Path(entry.path))
                except FileNotFoundError:
                    continue
                if w.order <= retired:
                    out.append(Path(entry.path))
        return out

    def _remove(self, paths: Sequence[Path]) -> None:
        for p in paths:
            p.unlink(missing_ok=True)
            self._known.pop(p.name, None)
        if paths:
            _fsync_dir(self.directory)

    def _clean_temps(self) -> None:
        """Remove temporary files of writers that are gone: this process's pid (a restarted
        container reuses it), a pid no longer alive, or older than an hour."""
        now = time.time()
        for entry in os.scandir(self.directory):
            m = _TEMP.match(entry.name) or re.match(r"^\.retired\.json\.(\d+)\.[0-9a-f]+\.tmp$", entry.name)
            if not m:
                continue
            pid = int(m.group(1))
            try:
                old = now - entry.stat().st_mtime > _STALE_TEMP_S
            except FileNotFoundError:
                continue
            if pid == os.getpid() or old or not pid_alive(pid):
                Path(entry.path).unlink(missing_ok=True)

    def temp_files(self) -> list[Path]:
        """Temporary files present now (a crashed writer's leftovers, or a write in progress)."""
        if not self.directory.is_dir():
            return []
        return sorted(Path(e.path) for e in os.scandir(self.directory)
                      if e.name.startswith(".") and e.name.endswith(".tmp"))
