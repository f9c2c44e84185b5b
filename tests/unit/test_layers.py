"""The package boundaries of pyproject.toml's [tool.importlinter] hold (import-linter), and they
are not vacuous: the same contracts run on a copy of the tree with one forbidden import added
fail, naming the import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run([exe, "--no-cache", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_package_boundaries_hold() -> None:
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("module, bad_import, contract", [
    ("detectors/univariate.py", "import agent.monitor.model", "detectors is a pure library"),
    ("agent/decode/records.py", "from agent.state.counters import Counters", "ingest and decode know nothing"),
    ("agent/ingest/replay.py", "import agent.incidents.alertmanager", "ingest and decode know nothing"),
    ("agent/ingest/broker.py", "import agent.decode.records", "ingest and decode are independent"),
    ("agent/rca/worker.py", "import agent.ingest.broker", "rca and retrain never import the ingest"),
    ("agent/retrain/trainer.py", "from agent.decode.records import Predictions", "rca and retrain never import the ingest"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    for name in ("agent", "detectors"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # planted by the test\n")
    res = lint(tmp_path)
    assert res.returncode != 0, res.stdout
    broken = [line for line in res.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), res.stdout
    assert bad_import.split()[1] in res.stdout  # the report names the offending import
