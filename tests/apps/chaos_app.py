"""Tasks for the chaos suite. Every execution is counted from inside the task: a
``S <task id> <attempt> <pid> <time>`` entry when it starts and ``F ...`` when it
finishes, pushed to the Redis list ``YADTQ_CHAOS_LEDGER`` on the ledger server
``YADTQ_CHAOS_LEDGER_REDIS`` (a Redis the fault tests never restart)."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import redis

from yadtq import YADTQ

app = YADTQ("chaos")


@lru_cache(maxsize=1)
def _ledger() -> Any:
    return redis.Redis.from_url(os.environ["YADTQ_CHAOS_LEDGER_REDIS"], socket_timeout=30)


def mark(kind: str, task_id: str, attempt: int) -> None:
    """Append one ledger entry (not a task: hostile messages name it to try to run it)."""
    _ledger().rpush(os.environ["YADTQ_CHAOS_LEDGER"],
                    f"{kind} {task_id} {attempt} {os.getpid()} {time.time():.3f}")


@app.task(bind=True, max_retries=0)
def work(self: Any, n: int, seconds: float = 0.0) -> int:
    """Start entry, sleep ``seconds``, finish entry; returns ``n``."""
    mark("S", self.request.id, self.request.retries)
    if seconds:
        time.sleep(seconds)
    mark("F", self.request.id, self.request.retries)
    return n


@app.task(bind=True, max_retries=0)
def blob(self: Any, size: int) -> str:
    """Return ``size`` characters (over ``result_max_bytes`` in the hostile-input tests)."""
    mark("S", self.request.id, self.request.retries)
    mark("F", self.request.id, self.request.retries)
    return "x" * size


@app.task(bind=True, max_retries=0)
def whoami(self: Any, seconds: float) -> int:
    """Sleep ``seconds`` and return the pid that ran it (to see whose result is stored)."""
    mark("S", self.request.id, self.request.retries)
    time.sleep(seconds)
    mark("F", self.request.id, self.request.retries)
    return os.getpid()


@app.task(bind=True, max_retries=0)
def long_first(self: Any, n: int, seconds: float) -> int:
    """Like :func:`work`, but only its first run sleeps ``seconds``: a run again after a
    fault is quick (the scenario is about the first run outlasting a drain, not the rerun)."""
    mark("S", self.request.id, self.request.retries)
    if _ledger().set(f"{os.environ['YADTQ_CHAOS_LEDGER']}:first:{self.request.id}", 1, nx=True, ex=3600):
        time.sleep(seconds)
    mark("F", self.request.id, self.request.retries)
    return n

