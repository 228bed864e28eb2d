"""Tasks for the canvas tests, on every transport. Side effects (how often a task ran)
are counted in Redis when ``YADTQ_TEST_REDIS``/``YADTQ_TEST_COUNTERS`` are set, else in
files under ``YADTQ_TEST_SIDE_EFFECTS``, else in memory (in-process workers)."""

from __future__ import annotations

import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from yadtq import YADTQ

app = YADTQ("canvas")

_local: dict[str, int] = {}
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["YADTQ_TEST_REDIS"])


def count(name: str) -> int:
    """Count one run of ``name``; how many so far (across every worker process)."""
    if os.environ.get("YADTQ_TEST_COUNTERS"):
        return int(_redis().incr(f"{os.environ['YADTQ_TEST_COUNTERS']}:{name}"))
    directory = os.environ.get("YADTQ_TEST_SIDE_EFFECTS")
    if directory:
        path = Path(directory) / name
        with path.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return len(path.read_text().splitlines())
    with _lock:
        _local[name] = _local.get(name, 0) + 1
        return _local[name]


def counted(name: str) -> int:
    """How many runs of ``name`` were counted."""
    if os.environ.get("YADTQ_TEST_COUNTERS"):
        value = _redis().get(f"{os.environ['YADTQ_TEST_COUNTERS']}:{name}")
        return int(value) if value is not None else 0
    directory = os.environ.get("YADTQ_TEST_SIDE_EFFECTS")
    if directory:
        path = Path(directory) / name
        return len(path.read_text().splitlines()) if path.exists() else 0
    with _lock:
        return _local.get(name, 0)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def mul(x: int, y: int) -> int:
    return x * y


@app.task
def nap_add(x: int, y: int, seconds: float = 0.05) -> int:
    """A chord member that takes a moment, so workers can be killed mid-chord."""
    time.sleep(seconds)
    return x + y


@app.task
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task
def counted_sum(values: list[int], key: str) -> int:
    count(key)
    return sum(values)


@app.task(max_retries=0)
def fail(*args: Any) -> None:
    raise ValueError(f"failing on purpose with {args!r}")


@app.task
def note(value: Any, key: str) -> Any:
    """A callback: counts itself, returns what it was given."""
    count(f"{key}:{value}")
    return value


@app.task(bind=True)
def lineage(self: Any, *args: Any) -> list[Any]:
    """Its parent and root ids, as a worker saw them."""
    return [self.request.parent_id, self.request.root_id]
