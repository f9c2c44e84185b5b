"""What the decoder drivers share: the configurations an input's first byte picks, the
number-conversion oracle, and the watch on the decoders' record-by-record fallback."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import struct
import sys
from typing import Any, Callable, ContextManager

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:  # run as a script from anywhere: the checkout's packages, after PYTHONPATH's
    sys.path.append(ROOT)

try:
    import atheris
except ImportError:  # the replay test runs the drivers without atheris
    atheris = None


def instrumented(main: bool) -> ContextManager[Any]:
    """atheris' import instrumentation of driftwarden's packages when a driver fuzzes (run as
    __main__ with atheris installed); nothing when the replay test imports it."""
    if main and atheris is not None:
        return atheris.instrument_imports(include=["agent", "detectors"])
    return contextlib.nullcontext()


def check_extensions(*modules: Any) -> None:
    """Under scripts/fuzz.sh the C extensions must be the sanitized build, not the in-place .so."""
    want = os.environ.get("DRIFTWARDEN_FUZZ_EXT_DIR")
    for m in modules:
        path = os.path.realpath(m.__file__)
        if want and not path.startswith(os.path.realpath(want) + os.sep):
            raise SystemExit(f"fuzz: {m.__name__} loaded from {path}, not from the sanitized build in {want}")
        print(f"fuzz: {m.__name__} from {path}", file=sys.stderr)


# -------------------------------------------------------------------- input configuration

MS = 1_790_000_000_123


def broker_ms(config: int, n: int) -> np.ndarray:
    """Kafka broker timestamps: ordinary ones, or -1 (a record without a timestamp)."""
    if config & 0x20:
        return np.full(n, -1, dtype=np.int64)
    return np.arange(n, dtype=np.int64) + MS


def max_bytes(config: int) -> int:
    return (1 << 20, 1 << 20, 256, 64)[(config >> 6) & 3]


def known_models(config: int, specs: dict[str, Any]) -> set[str]:
    """The models the agent monitors: those the scanner knows, plus one it has no feature spec
    for ("u": its records keep raw feature dicts), or a subset."""
    k = (config >> 3) & 3
    if k == 2:
        return set(specs) | {"u"}
    if k == 3:
        return {sorted(specs)[0]}
    return set(specs)


# -------------------------------------------------------------------- number tokens

_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def expected_number(tok: bytes) -> float | None:
    """What agent.decode._scan.parse_number must return for a token: the double Python reads (an
    integer token as msgspec reads it into a float field, float(int)), or None where the token
    is not a JSON number, is 128 characters or longer (left to the exact route), or is beyond a
    double's range."""
    if len(tok) >= 128 or not _JSON_NUMBER.fullmatch(tok):
        return None
    s = tok.decode()
    try:
        x = float(int(s)) if s.lstrip("-").isdigit() else float(s)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def check_numbers(parse_number: Callable[[bytes], float | None], tokens: list[bytes]) -> None:
    for tok in tokens:
        if len(tok) > 300:
            continue
        got, want = parse_number(tok), expected_number(tok)
        assert (got is None) == (want is None) and (
            want is None or struct.pack("d", got) == struct.pack("d", want)), ("parse_number", tok, got, want)


# -------------------------------------------------------------------- the fallback watch

class _Watch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "record by record" in msg:
            self.messages.append(msg)


ALLOW_FALLBACK = os.environ.get("FUZZ_ALLOW_FALLBACK") == "1"


def no_fallback(logger_name: str, where: str, decode: Callable[[], Any], fast: Callable[[], Any]) -> Any:
    """``decode()``, failing if it fell back to decoding record by record (which it logs to
    ``logger_name``).

    The decoders never raise: when a batch's fast routes raise they log a warning and decode
    the batch again record by record. For the fuzzer that warning is a finding (a fast route
    raised on some input) unless FUZZ_ALLOW_FALLBACK=1; ``fast`` calls the fast route itself,
    so the failure carries the original traceback. The handler is attached for this call only
    (the replay test runs inside the normal suite, whose other tests read these warnings)."""
    watch = _Watch()
    logger = logging.getLogger(logger_name)  # the decoder module's own logger
    logger.addHandler(watch)
    try:
        out = decode()
    finally:
        logger.removeHandler(watch)
    if watch.messages and not ALLOW_FALLBACK:
        try:
            fast()
        except Exception as e:
            raise AssertionError(f"{where}: the fast route raised ({watch.messages[0]})") from e
        raise AssertionError(f"{where}: the fast route raised ({watch.messages[0]}); not again on a rerun")
    return out
