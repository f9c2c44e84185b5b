"""Replay every saved fuzz input through its driver (tests/fuzz/README.md): the seed corpora in
tests/fuzz/corpus/<driver>/ and the crashes the fuzzer found in tests/fuzz/crashes/<driver>/.

Each driver's ``TestOneInput`` runs here as a plain function, without atheris, sanitizers or
the fuzzer (atheris need not be installed), so a crash found by scripts/fuzz.sh fails the
normal suite until its bug is fixed, and stays fixed after."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
DRIVERS = ("fuzz_predictions", "fuzz_labels", "fuzz_ecdf")


def _inputs() -> Iterator[object]:
    for driver in DRIVERS:
        for kind in ("corpus", "crashes"):
            folder = FUZZ / kind / driver
            for f in sorted(folder.iterdir()) if folder.is_dir() else ():
                if f.is_file() and not f.name.startswith("."):
                    yield pytest.param(driver, f, id=f"{kind}/{driver}/{f.name}")


def _driver(name: str) -> ModuleType:
    if str(FUZZ) not in sys.path:
        sys.path.insert(0, str(FUZZ))
    return importlib.import_module(name)  # the module pytest's doctest collection imports, if it did


def test_every_driver_has_seeds_and_a_crash_folder() -> None:
    for driver in DRIVERS:
        assert (FUZZ / f"{driver}.py").is_file()
        assert len([f for f in (FUZZ / "corpus" / driver).iterdir() if not f.name.startswith(".")]) >= 5, driver
        assert (FUZZ / "crashes" / driver).is_dir(), driver


@pytest.mark.parametrize(("driver", "path"), list(_inputs()))
def test_fuzz_input_replays_cleanly(driver: str, path: Path) -> None:
    _driver(driver).TestOneInput(path.read_bytes())
