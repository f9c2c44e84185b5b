"""stop_worker: the stop sentinel reaches a worker even when its queue is full."""

from __future__ import annotations

import queue
import threading
import time

from agent.background import stop_worker

STOP = object()


def test_a_full_queue_still_gets_the_sentinel_and_the_thread_ends() -> None:
    work: queue.Queue[object] = queue.Queue(maxsize=2)
    done: list[object] = []

    def run() -> None:
        while (item := work.get()) is not STOP:
            time.sleep(0.2)             # slow work: the queue stays full for a while
            done.append(item)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    for i in range(3):
        work.put(i)                     # one in hand, two queued: full
    stop_worker(t, work, STOP, timeout_s=5.0)
    assert not t.is_alive() and done == [0, 1, 2]   # the work in hand and queued finished first
    stop_worker(None, work, STOP, timeout_s=0.1)    # nothing started: nothing to stop
