"""Fetch the datasets the tests and benchmarks read: six files from the nannyml 0.13.1 wheel.

    python3 scripts/fetch_data.py            # nothing to do when the copy is complete
    python3 scripts/fetch_data.py --check    # verify only; exit 1 when incomplete
    python3 scripts/fetch_data.py --wheel nannyml-0.13.1-py3-none-any.whl   # no download

The files (and nannyml's Apache-2.0 licence) are extracted, unchanged, into the folder that
tests/support/data.py resolves: data/nannyml/ in the repository, or $DRIFTWARDEN_DATA. Each file
is checked against its SHA-256 in the 0.13.1 wheel and its CSV header / parquet columns.
Only the wheel is downloaded (``pip download --no-deps``); nannyml is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.data import DATA, FILES  # noqa: E402

VERSION = "0.13.1"
_IN_WHEEL = "nannyml/datasets/data/"
_EMPLOYMENT = ["id", "AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY",
               "DEAR", "DEYE", "DREM", "SEX", "RAC1P"]
# name -> (path inside the wheel, sha256, CSV header or parquet columns)
MANIFEST: dict[str, tuple[str, str, list[str] | None]] = {
    "synthetic_car_loan_reference.csv": (
        _IN_WHEEL + "synthetic_car_loan_reference.csv",
        "e6d2e70d8bac3e892764cb96570efb1adebf8f95497e07e96746eb1d94925995",
        ["id", "car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
         "size_of_downpayment", "driver_tenure", "repaid", "timestamp", "y_pred_proba", "y_pred"]),
    "synthetic_car_loan_analysis.csv": (
        _IN_WHEEL + "synthetic_car_loan_analysis.csv",
        "1ecfee47fbce587b423d1eb365cbb7b36265388596dca5b3e1fed0748159529b",
        ["id", "car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
         "size_of_downpayment", "driver_tenure", "timestamp", "y_pred_proba", "y_pred"]),
    "synthetic_car_loan_analysis_target.csv": (
        _IN_WHEEL + "synthetic_car_loan_analysis_target.csv",
        "017d51c34548b57e663d216ad369588fa30d6a9523f94b81ef0a2af148009560",
        ["id", "repaid"]),
    "employment_MA_reference.pq": (
        _IN_WHEEL + "employment_MA_reference.pq",
        "21d0e33655666071bde9ed21bf35b24fe14c1476e3dd37a5194b827ad5a570e4",
        [*_EMPLOYMENT, "employed", "year", "prediction", "predicted_probability"]),
    "employment_MA_analysis.pq": (
        _IN_WHEEL + "employment_MA_analysis.pq",
        "591328bcf7e46139660f2cc6b1705a6f2f66edf2418ce2a893cf2892be3f66a7",
        [*_EMPLOYMENT, "year", "prediction", "predicted_probability"]),
    "employment_MA_analysis_target.pq": (
        _IN_WHEEL + "employment_MA_analysis_target.pq",
        "c306840f0c092bda7608a09e61e7e715ac2b7fb2d17da8062900c3ecd6fdbe30",
        ["id", "employed"]),
    "LICENSE.nannyml": (
        f"nannyml-{VERSION}.dist-info/LICENSE",
        "4712221f9c77dad5ee69ce85987d2154a689b91f53c13dd98a056036187d2ab0",
        None),
}
assert set(FILES) <= set(MANIFEST)

README = f"""# nannyml {VERSION} datasets (fetched, not committed)

Extracted unchanged by `scripts/fetch_data.py` (run by `scripts/setup.sh`) from the nannyml {VERSION}
wheel on PyPI (`pip download --no-deps nannyml=={VERSION}`), where they sit under
`nannyml/datasets/data/`. nannyml is Apache-2.0 licensed: see LICENSE.nannyml (the wheel's
`nannyml-{VERSION}.dist-info/LICENSE`). Tests and benchmarks find this folder through
`tests/support/data.py`; `DRIFTWARDEN_DATA` points them elsewhere.

| files | task | rows |
|---|---|---|
| synthetic_car_loan_{{reference,analysis,analysis_target}}.csv | binary classification (`repaid`; `y_pred_proba`, `y_pred`), mixed numeric and categorical features, `timestamp` | 50,000 + 50,000 |
| employment_MA_{{reference,analysis,analysis_target}}.pq | binary classification (`employed`), US census (ACS) survey data for Massachusetts over several years | 68,785 + 208,892 |

Each "reference" file is the model's training/validation period, each "analysis" file the
production traffic after it (with the model's predictions), each "analysis_target" file the
true labels, joined by `id`.
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def problem(path: Path, name: str) -> str | None:
    """Why `path` is not the expected `name`, or None when it is."""
    _, sha, columns = MANIFEST[name]
    if not path.is_file() or path.stat().st_size == 0:
        return f"{path}: missing or empty"
    if _sha256(path) != sha:
        return f"{path}: SHA-256 differs from nannyml {VERSION}'s"
    if columns is None:
        return None
    if name.endswith(".csv"):
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split(",")
    else:
        import pyarrow.parquet as pq  # a dependency of driftwarden
        header = pq.read_schema(path).names
    return None if header == columns else f"{path}: columns {header}, expected {columns}"


def problems(dest: Path) -> list[str]:
    out = [p for name in MANIFEST if (p := problem(dest / name, name))]
    if not (dest / "README.md").is_file():
        out.append(f"{dest / 'README.md'}: missing")
    return out


def download_wheel(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    f"nannyml=={VERSION}", "-d", str(tmp)], check=True)
    wheels = sorted(tmp.glob(f"nannyml-{VERSION}-*.whl"))
    if not wheels:
        raise SystemExit(f"fetch_data: pip download left no nannyml {VERSION} wheel in {tmp}")
    return wheels[0]


def extract(wheel: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name, (member, _, _) in MANIFEST.items():
            part = dest / f".{name}.part"
            with zf.open(member) as src, open(part, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            if why := problem(part, name):
                part.unlink()
                raise SystemExit(f"fetch_data: {member} in {wheel.name} is not the expected file ({why})")
            os.replace(part, dest / name)
    (dest / "README.md").write_text(README)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=DATA, help=f"target folder (default {DATA})")
    ap.add_argument("--check", action="store_true", help="verify only; exit 1 when incomplete")
    ap.add_argument("--wheel", type=Path, help="a nannyml wheel already downloaded (no pip download)")
    args = ap.parse_args(argv)
    missing = problems(args.dest)
    if not missing:
        print(f"fetch_data: {args.dest} is complete (nannyml {VERSION} datasets)")
        return 0
    if args.check:
        print("fetch_data: incomplete:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="driftwarden-nannyml-") as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        extract(wheel, args.dest)
    missing = problems(args.dest)
    if missing:
        print("fetch_data: still incomplete:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    print(f"fetch_data: extracted the nannyml {VERSION} datasets into {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
