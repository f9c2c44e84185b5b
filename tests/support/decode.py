"""Decoding with a chosen set of routes, for tests that compare them.

The agent builds one :class:`agent.decode.decoder.Decoder` per pipeline. Tests pick the routes:
``typed`` (per-model msgspec structs, from a TypedFeatures' specs) and ``scanner`` (the native
scanner first); without either, only the exact route runs and feature objects stay dicts. Decoders
are cached per (specs, max_bytes, native) unless ``fresh`` (the scanner's category caches then
start empty, as the fuzz drivers want).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from agent.decode.decoder import Decoded, Decoder
from agent.decode.features import TypedFeatures
from agent.decode.scanner import RecordScanner

_CACHE: dict[Any, Decoder] = {}


def decoder(known_models: Collection[str], max_bytes: int = 1 << 20, typed: TypedFeatures | None = None,
            scanner: RecordScanner | None = None, fresh: bool = False) -> Decoder:
    specs = dict(scanner.specs if scanner is not None else typed.specs if typed is not None else {})
    models = {m: specs.get(m) for m in known_models}
    key = (tuple(sorted((m, s) for m, s in models.items())), max_bytes, scanner is not None)
    if fresh or key not in _CACHE:
        dec = Decoder(models, max_bytes, native=scanner is not None)
        if fresh:
            return dec
        _CACHE[key] = dec
    return _CACHE[key]


def decode_predictions(values: list[bytes | None], broker_ms: np.ndarray, known_models: Collection[str],
                       max_bytes: int = 1 << 20, typed: TypedFeatures | None = None,
                       scanner: RecordScanner | None = None, fresh: bool = False) -> Decoded:
    return decoder(known_models, max_bytes, typed, scanner, fresh).predictions(values, broker_ms)


def decode_labels(values: list[bytes | None], broker_ms: np.ndarray, known_models: Collection[str],
                  max_bytes: int = 1 << 20, scanner: RecordScanner | None = None, fresh: bool = False) -> Decoded:
    return decoder(known_models, max_bytes, None, scanner, fresh).labels(values, broker_ms)
