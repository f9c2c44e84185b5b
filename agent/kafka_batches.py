"""kafka-python's record-batch reading, done natively.

kafka-python decodes every record of a fetched batch in Python (varints, slices, a record
object): ~11 us a record on this project's machine, most of what separates it from the
confluent client at wide records. :func:`install` replaces only ``DefaultRecordBatch.__iter__``
of the pinned kafka-python version with one call into ``agent._kafka.kafka_records``, which
builds the same ``DefaultRecord`` objects (offsets, timestamps, keys, values, headers). All the
rest stays kafka-python's: fetching, CRC checks, decompression, transactions and control
batches (read by kafka-python itself), and every error: a body the native reader finds
malformed is handed back to kafka-python's own reader, which raises its usual
``CorruptRecordError``. Another kafka-python version, or no C extension, leaves it untouched.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import kafka
from kafka.record.default_records import DefaultRecord, DefaultRecordBatch

try:
    from agent._kafka import kafka_records
except ImportError:  # built without a C compiler
    kafka_records = None

__all__ = ["install", "installed"]

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("3.0.12",)  # the internals read here: _buffer, _pos, _num_records, ...


def installed() -> bool:
    return getattr(DefaultRecordBatch.__iter__, "_driftwarden_native", False)


def install() -> bool:
    """Switch kafka-python's batch iteration to the native reader (idempotent). Returns
    whether it is in place."""
    if installed():
        return True
    if kafka_records is None or kafka.__version__ not in SUPPORTED_VERSIONS:
        log.info("kafka-python %s reads record batches in Python (native reader: %s)", kafka.__version__,
                 "not built" if kafka_records is None else f"supports {', '.join(SUPPORTED_VERSIONS)}")
        return False
    python_iter = DefaultRecordBatch.__iter__

    def __iter__(self: DefaultRecordBatch) -> Iterator[Any]:
        self._maybe_uncompress()
        if self.is_control_batch:  # transaction markers: kafka-python's own ControlRecord path
            return python_iter(self)
        append = self.max_timestamp if self.timestamp_type == DefaultRecordBatch.LOG_APPEND_TIME else None
        try:
            records = kafka_records(DefaultRecord, self._buffer, self._pos, self._num_records, self.base_offset,
                                    self.first_timestamp, self.timestamp_type, append)
        except ValueError:  # malformed: kafka-python's reader raises its CorruptRecordError
            return python_iter(self)
        self._pos = len(self._buffer)
        self._next_record_index = self._num_records
        return iter(records)

    __iter__._driftwarden_native = True  # type: ignore[attr-defined]
    DefaultRecordBatch.__iter__ = __iter__  # type: ignore[method-assign]
    return True
