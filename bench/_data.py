"""Shared helpers for the drift benchmarks: data paths, feature lists, memory probes."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/x.py` without installing
    sys.path.insert(0, str(ROOT))

from tests.support.data import DATA, data_file  # noqa: E402, F401  (data/nannyml/ or $DRIFTWARDEN_DATA)

CAR_FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length",
                "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure"]
EMPLOYMENT_FEATURES = ["AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
                       "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"]


def car_loan() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis) feature frames of the synthetic car-loan set."""
    ref = pd.read_csv(data_file("synthetic_car_loan_reference.csv"), usecols=CAR_FEATURES)[CAR_FEATURES]
    ana = pd.read_csv(data_file("synthetic_car_loan_analysis.csv"), usecols=CAR_FEATURES)[CAR_FEATURES]
    return ref, ana


def employment() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis) feature frames of the employment (ACS, Massachusetts) set."""
    ref = pd.read_parquet(data_file("employment_MA_reference.pq"), columns=EMPLOYMENT_FEATURES)
    ana = pd.read_parquet(data_file("employment_MA_analysis.pq"), columns=EMPLOYMENT_FEATURES)
    return ref, ana


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
