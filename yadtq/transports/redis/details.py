"""Task details in the Redis backend (:class:`~yadtq.transports.details_store.DetailsBackend`).

Keys, each after ``{prefix}:``:

- ``calls:<bucket>``: hash, task id -> the packed call, for the tasks started in one
  of :data:`BUCKETS` time buckets spanning ``result_expires``; TTL ``result_expires``
  plus a bucket. One ``HSET`` per batch, so a worker pays two commands per save
  however many tasks it started; a read looks in every live bucket (one pipeline);
- ``children:<task id>``: sorted set, child task id -> when it first started (a
  retry keeps its place), the newest ``CHILDREN_LIMIT``; TTL ``result_expires`` from
  its latest child.

Written in one pipeline per batch of started tasks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Optional, cast

import redis

from ...exceptions import BackendUnavailable
from ..details_store import CHILDREN_LIMIT, EncodedCall, EncodedDetails, TaskCall

if TYPE_CHECKING:
    from ...settings import Settings

CALLS_KEY = "calls:"
#: Time buckets the calls of ``result_expires`` are spread over.
BUCKETS = 24
CHILDREN_KEY = "children:"


class RedisDetails(EncodedDetails):
    """Mixed into :class:`~yadtq.transports.redis.RedisBackend`."""

    _redis: redis.Redis
    settings: Settings
    key: Callable[..., str]

    def _bucket_size(self) -> float:
        return max(60.0, self.settings.result_expires / BUCKETS)

    def _save_encoded(self, calls: Sequence[EncodedCall]) -> None:
        """Store ``(task id, parent id, encoded call)`` rows: one pipeline."""
        if not calls:
            return
        ttl = max(1, int(self.settings.result_expires))
        now = time.time()
        size = self._bucket_size()
        bucket = self.key(CALLS_KEY, str(int(now // size)))
        with _unavailable("save_calls"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(bucket, mapping={task_id: blob for task_id, _, blob in calls})
            pipe.expire(bucket, ttl + int(size) + 1)
            for task_id, parent_id, _ in calls:
                if parent_id is not None:
                    children = self.key(CHILDREN_KEY, parent_id)
                    pipe.zadd(children, {task_id: now}, nx=True)
                    pipe.zremrangebyrank(children, 0, -CHILDREN_LIMIT - 1)
                    pipe.expire(children, ttl)
            pipe.execute()

    def calls(self, task_ids: Sequence[str]) -> list[Optional[TaskCall]]:
        if not task_ids:
            return []
        size = self._bucket_size()
        newest = int(time.time() // size)
        buckets = range(newest, newest - int(self.settings.result_expires // size) - 2, -1)
        with _unavailable("calls"):
            pipe = self._redis.pipeline(transaction=False)
            for bucket in buckets:
                pipe.hmget(self.key(CALLS_KEY, str(bucket)), list(task_ids))
            replies = cast("list[list[Optional[bytes]]]", pipe.execute())
        found: list[Optional[TaskCall]] = []
        for i in range(len(task_ids)):
            blob = next((reply[i] for reply in replies if reply[i] is not None), None)  # newest first
            found.append(TaskCall.decode(blob) if blob is not None else None)
        return found

    def children(self, parent_id: str, limit: int = CHILDREN_LIMIT) -> list[str]:
        if limit <= 0:
            return []
        with _unavailable("children"):
            ids = cast("list[bytes]", self._redis.zrange(self.key(CHILDREN_KEY, parent_id), -limit, -1))
        return [raw.decode() for raw in ids]


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise BackendUnavailable(f"redis backend: {what} failed: {exc}") from exc
