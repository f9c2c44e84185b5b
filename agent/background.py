"""The agent's off-the-hot-path threads (root-cause analyses, retraining datasets) share one
shape: a daemon thread draining a bounded queue until it meets a stop sentinel."""

from __future__ import annotations

import queue
import threading
from typing import Any

__all__ = ["stop_worker"]


def stop_worker(thread: threading.Thread | None, work: queue.Queue[Any], sentinel: object,
                timeout_s: float) -> None:
    """Queue ``sentinel`` behind the work in hand and wait up to ``timeout_s`` for ``thread`` to
    end. A full queue is waited on (within the same time): dropping the sentinel would leave the
    thread running past its owner's stop."""
    if thread is None:
        return
    try:
        work.put(sentinel, timeout=timeout_s)
    except queue.Full:
        pass  # the thread is stuck on one item; it is a daemon and ends with the process
    thread.join(timeout_s)
