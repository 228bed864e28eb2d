"""Dramatiq on Redis with the Redis results backend."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

broker = RedisBroker(url=os.environ["BENCH_REDIS"])
broker.add_middleware(Results(backend=RedisBackend(url=os.environ["BENCH_REDIS"])))
dramatiq.set_broker(broker)
QUEUE = os.environ["BENCH_QUEUE"]


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def noop() -> None:
    """Does nothing."""


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def add(x: int, y: int) -> int:
    return x + y
