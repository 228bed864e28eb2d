"""A worker's owner-thread half (``TaskConsumer``) driven by a test in its own process:
a started thread pool and recorder around a stand-in consumer, so a test can call
``_claim_and_start``, ``drain`` or ``reclaim`` itself."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from yadtq import YADTQ
from yadtq.worker.attempts import Identity, WorkerStats
from yadtq.worker.consumer import TaskConsumer
from yadtq.worker.pools import ThreadPool

from .helpers import wait_until


@contextmanager
def task_consumer(app: YADTQ, consumer: Any, threads: int) -> Iterator[tuple[TaskConsumer, ThreadPool]]:
    """A ``TaskConsumer`` over ``consumer`` with a started pool of ``threads`` and its
    recorder thread; on exit the pool is let finish (10 s) and everything stops."""
    outcomes: queue.SimpleQueue[Any] = queue.SimpleQueue()
    pool = ThreadPool(app, threads, "w", lambda job, outcome: outcomes.put((job, outcome)))
    tasks = TaskConsumer(app, consumer, pool, Identity("w", "w#1"), WorkerStats(), outcomes,
                         threading.Event())
    pool.start()
    stop = threading.Event()
    recorder = threading.Thread(target=tasks.record_forever, args=(stop,), daemon=True)
    recorder.start()
    try:
        yield tasks, pool
    finally:
        try:
            wait_until(lambda: not pool.active(), 10)
        finally:
            stop.set()
            outcomes.put(None)
            recorder.join(5)
            pool.stop()
