"""Tasks for the Kafka + Redis integration tests. Side effects are counted in Redis
(``YADTQ_TEST_REDIS``, keys under ``YADTQ_TEST_COUNTERS``) so a test sees exactly
what ran in worker processes."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import redis

from yadtq import YADTQ

app = YADTQ("integration")


@lru_cache(maxsize=1)
def _redis() -> Any:
    return redis.Redis.from_url(os.environ["YADTQ_TEST_REDIS"])


def count(name: str) -> int:
    """Increment and return the counter ``name``."""
    return int(_redis().incr(f"{os.environ['YADTQ_TEST_COUNTERS']}:{name}"))


@app.task
def add(x: int, y: int) -> int:
    count(f"add:{x}:{y}")
    return x + y


@app.task
def sleep_then(key: str, seconds: float) -> str:
    count(f"{key}:started")
    time.sleep(seconds)
    count(f"{key}:finished")
    return key


@app.task(dedupe=True)
def once(x: int) -> int:
    count(f"once:{x}")
    time.sleep(0.2)
    return x


@app.task(retry_backoff=0.05, max_retries=5)
def flaky(key: str, failures: int) -> str:
    if count(key) <= failures:
        raise ConnectionError(f"attempt failed ({key})")
    return "recovered"


@app.task
def stamp(key: str) -> float:
    count(key)
    return time.time()
