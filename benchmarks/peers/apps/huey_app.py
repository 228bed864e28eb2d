"""Huey on Redis: blocking queue reads, results stored (None too) and notified by BLPOP."""

from __future__ import annotations

import os

from huey import RedisHuey

huey = RedisHuey(os.environ["BENCH_QUEUE"], url=os.environ["BENCH_REDIS"], blocking=True,
                 notify_result=True, store_none=True)


@huey.task()
def noop() -> None:
    """Does nothing."""


@huey.task()
def add(x: int, y: int) -> int:
    return x + y
