"""Fixtures of the Redis backend's own tests: backends under a prefix of their own, whose
keys are deleted afterwards, and a plain client of the same server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
import redis

from yadtq.settings import Settings
from yadtq.transports.redis import RedisBackend


@pytest.fixture
def make_backend(redis_url: str, unique: str) -> Iterator[Callable[..., RedisBackend]]:
    made: list[RedisBackend] = []

    def make(**settings: Any) -> RedisBackend:
        options = {"prefix": f"test-{unique}", **settings.pop("backend_options", {})}
        backend = RedisBackend(redis_url, Settings(backend_options=options, **settings))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"test-{unique}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def backend(make_backend: Callable[..., RedisBackend]) -> RedisBackend:
    return make_backend()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()
