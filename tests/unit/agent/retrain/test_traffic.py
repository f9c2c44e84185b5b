"""The labelled-traffic store: exactly once under a real SIGKILL (a subprocess appending in a loop,
killed at random moments and at the two fault points around the rename), idempotent re-append,
retention by age and by bytes (a retired window never comes back), and reads that survive windows
whose dtypes differ."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.retrain.traffic import TrafficStore

ROOT = Path(__file__).resolve().parents[4]
ROWS = 2_000

WRITER = r"""
import os, signal, sys
import numpy as np, pandas as pd
from pathlib import Path
from agent.retrain.traffic import TrafficStore

root, start, stop, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fault = os.environ.get("FAULT")  # "before:W" or "after:W": SIGKILL around the rename of window W
if fault:
    where, target = fault.split(":")
    real = os.replace
    def replace(src, dst):
        if Path(dst).name == f"w{int(target):012d}.parquet":
            if where == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst)
    os.replace = replace

def frame(w):
    rng = np.random.default_rng(w)
    return pd.DataFrame({"id": [f"{w}:{i}" for i in range(rows)], "timestamp": w * 60.0 + np.arange(rows) * 0.01,
                         "x": rng.normal(size=rows), "segment": rng.choice(["a", "b"], rows),
                         "prediction": rng.integers(0, 2, rows), "label": rng.integers(0, 2, rows)})

store = TrafficStore(Path(root), "m")
print("ready", flush=True)
for w in range(start, stop):
    stored = store.append(w, frame(w))
    print(w, int(stored), flush=True)
"""


def _expected(w: int) -> pd.DataFrame:
    rng = np.random.default_rng(w)
    return pd.DataFrame({"id": [f"{w}:{i}" for i in range(ROWS)], "timestamp": w * 60.0 + np.arange(ROWS) * 0.01,
                         "x": rng.normal(size=ROWS), "segment": rng.choice(["a", "b"], ROWS),
                         "prediction": rng.integers(0, 2, ROWS), "label": rng.integers(0, 2, ROWS)})


def _writer(tmp_path: Path, start: int, stop: int, fault: str | None = None) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("FAULT", None)
    if fault:
        env["FAULT"] = fault
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "state"), str(start), str(stop), str(ROWS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _lines(out: str) -> list[tuple[int, int]]:
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            rows.append((int(parts[0]), int(parts[1])))
    return rows


def _check_store(state: Path, n: int) -> None:
    store = TrafficStore(state, "m")
    assert store.temp_files() == []                      # leftovers of the killed writers are gone
    assert store.windows() == list(range(n))
    frame = store.read()
    assert len(frame) == n * ROWS and frame["id"].is_unique
    for w, part in frame.groupby("__window__"):
        pd.testing.assert_frame_equal(part.drop(columns="__window__").reset_index(drop=True), _expected(int(w)))


def test_exactly_once_under_random_sigkill(tmp_path: Path) -> None:
    n, rng = 300, np.random.default_rng(7)
    stored_reports: Counter[int] = Counter()
    reported: set[int] = set()
    killed = 0
    for _ in range(6):
        start = max(0, max(reported, default=-1) + 1 - int(rng.integers(0, 5)))  # a restart replays a few windows
        proc = _writer(tmp_path, start, n)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        killed += proc.returncode == -signal.SIGKILL
        for w, stored in _lines(out):
            reported.add(w)
            stored_reports[w] += stored
        # every window whose append returned is on disk, whatever the kill interrupted
        assert set(TrafficStore(tmp_path / "state", "m", readonly=True).windows()) >= reported
    assert killed >= 4
    proc = _writer(tmp_path, 0, n)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    for w, stored in _lines(out):
        stored_reports[w] += stored
    assert max(stored_reports.values()) == 1             # no window was ever stored twice
    _check_store(tmp_path / "state", n)


@pytest.mark.parametrize("where", ["before", "after"])
def test_sigkill_around_the_rename(tmp_path: Path, where: str) -> None:
    proc = _writer(tmp_path, 0, 8, fault=f"{where}:5")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert [w for w, _ in _lines(out)] == [0, 1, 2, 3, 4]  # window 5's append never returned
    state = tmp_path / "state" / "traffic" / "m"
    assert (state / "w000000000005.parquet").exists() == (where == "after")
    if where == "before":
        assert any(p.name.startswith(".w000000000005.parquet.") for p in state.iterdir())  # the torn write
    assert 5 not in TrafficStore(tmp_path / "state", "m", readonly=True).windows() or where == "after"
    proc = _writer(tmp_path, 0, 8)                      # restart: replay from the start
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert dict(_lines(out)) == {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: int(where == "before"), 6: 1, 7: 1}
    _check_store(tmp_path / "state", 8)


def _frame(n: int, t0: float, **extra: object) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"{t0}:{i}" for i in range(n)], "timestamp": t0 + np.arange(n, dtype=float),
                         "x": np.arange(n, dtype=float), **extra})


def test_reappend_is_a_no_op(tmp_path: Path) -> None:
    store = TrafficStore(tmp_path, "car-loan")
    assert store.append(1, _frame(10, 100.0))
    path = store.directory / "w000000000001.parquet"
    before = (path.stat().st_mtime_ns, path.read_bytes())
    assert not store.append(1, _frame(3, 100.0))       # replayed (even with other rows): nothing written
    assert not TrafficStore(tmp_path, "car-loan").append(1, _frame(10, 100.0))
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert store.windows() == [1] and len(store.read()) == 10
    assert store.directory == tmp_path / "traffic" / "car-loan"
    assert [(w.window_id, w.event_time_s, w.rows) for w in store.info()] == [(1, 109.0, 10)]  # newest timestamp


def test_event_time_from_datetimes_and_explicit(tmp_path: Path) -> None:
    store = TrafficStore(tmp_path, "m", time_column="ts")
    stamps = pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:01:00"])
    store.append(0, pd.DataFrame({"ts": stamps, "y": [1, 0]}))
    store.append(1, pd.DataFrame({"ts": ["2024-01-01T00:02:00Z"], "y": [1]}))
    store.append(2, pd.DataFrame({"y": [1]}), event_time_s=5.0)
    times = {w.window_id: w.event_time_s for w in store.info()}
    assert times == {0: pd.Timestamp("2024-01-01 00:01:00", tz="UTC").timestamp(),
                     1: pd.Timestamp("2024-01-01 00:02:00", tz="UTC").timestamp(), 2: 5.0}
    with pytest.raises(ValueError, match="no 'ts' column"):
        store.append(3, pd.DataFrame({"y": [1]}))


def test_retention_by_age(tmp_path: Path) -> None:
    store = TrafficStore(tmp_path, "m", max_age_s=300.0)
    for w in range(10):
        store.append(w, _frame(5, w * 60.0), event_time_s=w * 60.0 + 59)
    removed = store.enforce_retention(now_s=660.0)      # keeps event times >= 360
    assert removed == [0, 1, 2, 3, 4, 5] and store.windows() == [6, 7, 8, 9]
    assert store.enforce_retention(now_s=660.0) == []
    assert not store.append(3, _frame(5, 180.0), event_time_s=239.0)  # a replay of a retired window stays out
    assert TrafficStore(tmp_path, "m").windows() == [6, 7, 8, 9]
    assert store.append(10, _frame(5, 600.0), event_time_s=659.0)
    assert store.windows() == [6, 7, 8, 9, 10]


def test_retention_by_bytes_removes_oldest_first(tmp_path: Path) -> None:
    store = TrafficStore(tmp_path, "m", max_bytes=None)
    for w in [4, 0, 3, 1, 2]:                            # event time, not append order, decides
        store.append(w, _frame(200, w * 100.0))
    sizes = {w.window_id: w.bytes for w in store.info()}
    assert store.bytes() == sum(sizes.values()) == sum(p.stat().st_size for p in store.directory.glob("w*.parquet"))
    budget = sizes[2] + sizes[3] + sizes[4]
    bounded = TrafficStore(tmp_path, "m", max_bytes=budget)
    assert bounded.enforce_retention(now_s=1e9) == [0, 1]
    assert bounded.windows() == [2, 3, 4] and bounded.bytes() <= budget
    assert TrafficStore(tmp_path, "m", max_bytes=budget - 1).enforce_retention(now_s=0.0) == [2]


def test_crash_between_mark_and_unlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TrafficStore(tmp_path, "m", max_age_s=100.0)
    for w in range(4):
        store.append(w, _frame(3, w * 100.0))
    monkeypatch.setattr(TrafficStore, "_remove", lambda self, paths: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        store.enforce_retention(now_s=250.0)            # the mark is written, no file unlinked
    assert len(list(store.directory.glob("w*.parquet"))) == 4
    assert store.windows() == [2, 3]                     # already retired for readers
    monkeypatch.undo()
    assert TrafficStore(tmp_path, "m").windows() == [2, 3]
    assert sorted(p.name for p in store.directory.glob("w*.parquet")) == ["w000000000002.parquet",
                                                                          "w000000000003.parquet"]
    assert json.loads((store.directory / "retired.json").read_text())["window_id"] == 1


def test_read_unifies_differing_dtypes(tmp_path: Path) -> None:
    store = TrafficStore(tmp_path, "m")
    store.append(0, pd.DataFrame({"id": ["a", "b"], "timestamp": [1.0, 2.0], "score": [None, None],
                                  "n": [1, 2], "cat": pd.Categorical(["u", "v"]), "mixed": [1, "x"]}))
    store.append(1, pd.DataFrame({"id": ["c"], "timestamp": [3.0], "score": [0.5], "n": [2.5],
                                  "cat": pd.Categorical(["w"]), "mixed": [2], "late": [True]}))
    store.append(2, pd.DataFrame({"id": ["d"], "timestamp": [4.0], "score": ["high"], "n": [3],
                                  "cat": ["z"], "mixed": [None]}))
    frame = store.read()
    assert list(frame.columns) == ["id", "timestamp", "score", "n", "cat", "mixed", "late", "__window__"]
    assert frame["__window__"].tolist() == [0, 0, 1, 2]
    assert frame["n"].dtype == np.float64 and frame["n"].tolist() == [1.0, 2.0, 2.5, 3.0]
    assert frame["score"].tolist() == [None, None, "0.5", "high"]   # all-null, float, text: text
    assert frame["cat"].tolist() == ["u", "v", "w", "z"]
    assert frame["mixed"].tolist() == ["1", "x", "2", None]
    assert frame["late"].tolist() == [None, None, True, None]
    numbers = store.read(windows=[0, 1], columns=["score", "n", "absent"])
    assert list(numbers.columns) == ["score", "n", "absent", "__window__"]
    assert numbers["score"].tolist()[2] == 0.5 and numbers["absent"].isna().all()
    assert store.read(since_s=3.5, window_column=None)["id"].tolist() == ["d"]
    with pytest.raises(KeyError, match=r"\[7\]"):
        store.read(windows=[0, 7])
    assert store.read(since_s=99.0).empty


def test_temp_files_are_ignored_and_cleaned(tmp_path: Path) -> None:
    store = TrafficStore(tmp_path, "m")
    store.append(0, _frame(3, 0.0))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = store.directory / f".w000000000001.parquet.{int(dead.stdout)}.deadbeef.tmp"
    stale.write_bytes(b"PAR1 torn")
    live = store.directory / f".w000000000002.parquet.{os.getppid()}.cafef00d.tmp"   # a live writer's
    live.write_bytes(b"PAR1 in progress")
    assert store.windows() == [0] and len(store.read()) == 3
    assert TrafficStore(tmp_path, "m", readonly=True).temp_files() == [stale, live]
    assert TrafficStore(tmp_path, "m").temp_files() == [live]


def test_bad_parameters_and_readonly(tmp_path: Path) -> None:
    for bad in ("../x", "", ".hidden", "a/b"):
        with pytest.raises(ValueError, match="model"):
            TrafficStore(tmp_path, bad)
    with pytest.raises(ValueError, match="max_age_s"):
        TrafficStore(tmp_path, "m", max_age_s=0)
    with pytest.raises(ValueError, match="max_bytes"):
        TrafficStore(tmp_path, "m", max_bytes=-1)
    store = TrafficStore(tmp_path, "m")
    with pytest.raises(ValueError, match="window_id"):
        store.append(-1, _frame(1, 0.0))
    reader = TrafficStore(tmp_path / "nowhere", "m", readonly=True)
    assert reader.windows() == [] and reader.read().empty and not (tmp_path / "nowhere").exists()
    with pytest.raises(PermissionError):
        reader.append(0, _frame(1, 0.0))
