"""Where tests and benchmarks find the real datasets: the one place that resolves that folder.

The six nannyml 0.13.1 datasets (Apache-2.0) are extracted from the nannyml wheel into
``data/nannyml/`` inside the repository by ``scripts/setup.sh`` (``scripts/fetch_data.py``);
the environment variable ``DRIFTWARDEN_DATA`` names another folder holding the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "data" / "nannyml"
DATA = Path(os.environ.get("DRIFTWARDEN_DATA") or DEFAULT)

CAR_LOAN = ("synthetic_car_loan_reference.csv", "synthetic_car_loan_analysis.csv",
            "synthetic_car_loan_analysis_target.csv")
EMPLOYMENT = ("employment_MA_reference.pq", "employment_MA_analysis.pq", "employment_MA_analysis_target.pq")
FILES = CAR_LOAN + EMPLOYMENT


def data_file(name: str) -> Path:
    """``DATA / name``, or FileNotFoundError saying how to get it."""
    path = DATA / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run scripts/setup.sh (scripts/fetch_data.py extracts the nannyml 0.13.1 "
            f"datasets into {DATA}), or set DRIFTWARDEN_DATA to a folder that holds them")
    return path
