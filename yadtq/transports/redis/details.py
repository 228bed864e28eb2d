"""Task details in the Redis backend (:class:`~yadtq.transports.details_store.DetailsBackend`).

Keys, each after ``{prefix}:``:

- ``calls:<bucket>``: hash, task id -> the packed call, for the tasks started in one
  of :data:`BUCKETS` time buckets spanning ``result_expires``; TTL ``result_expires``
  plus a bucket. One ``HSET`` per batch, so a worker pays two commands per save
  however many tasks it started; a read looks in every live bucket (one pipeline);
- ``children:<task id>``: sorted set, child task id -> when it first started (a
  retry keeps its place), the newest ``CHILDREN_LIMIT``; TTL ``result_expires`` from
  its latest child.

Written in one round trip per batch of started tasks: on one server (or Sentinel's
primary) sent by :meth:`~.grouped.GroupedScripts._direct`, on Redis Cluster as a pipeline
that routes each command to its key's node.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

import redis

from ..details_store import CHILDREN_LIMIT, EncodedCall, EncodedDetails, TaskCall
from .grouped import unavailable

if TYPE_CHECKING:
    from ...settings import Settings

CALLS_KEY = "calls:"
#: Time buckets the calls of ``result_expires`` are spread over.
BUCKETS = 24
CHILDREN_KEY = "children:"


class RedisDetails(EncodedDetails):
    """Mixed into :class:`~yadtq.transports.redis.RedisBackend`, whose client, key names
    and :meth:`~.grouped.GroupedScripts._direct` it uses."""

    _redis: redis.Redis
    _cluster: bool
    settings: Settings
    key: Callable[..., str]
    _direct: Callable[[Sequence[tuple[Any, ...]]], list[Any]]

    def _bucket_size(self) -> float:
        return max(60.0, self.settings.result_expires / BUCKETS)

    def _save_encoded(self, calls: Sequence[EncodedCall]) -> None:
        """Store ``(task id, parent id, encoded call)`` rows in one round trip.

        A worker saves every start's call (``worker/details.py``). Through redis-py's
        pipeline the commands of a batch of 256 starts cost the worker 1.4-1.6 us of CPU
        a task, most of it redis-py building the batch's ``HSET`` pair by pair; packed
        whole and sent by :meth:`_direct`, 0.9-1.0 us (2026-12-04, ``docs/performance.md``).
        """
        if not calls:
            return
        ttl = max(1, int(self.settings.result_expires))
        now = time.time()
        size = self._bucket_size()
        bucket = self.key(CALLS_KEY, str(int(now // size)))
        commands: list[tuple[Any, ...]] = [
            ("HSET", bucket, *chain.from_iterable((task_id, blob) for task_id, _, blob in calls)),
            ("EXPIRE", bucket, ttl + int(size) + 1)]
        for task_id, parent_id, _ in calls:
            if parent_id is not None:
                children = self.key(CHILDREN_KEY, parent_id)
                commands += [("ZADD", children, "NX", now, task_id),
                             ("ZREMRANGEBYRANK", children, 0, -CHILDREN_LIMIT - 1),
                             ("EXPIRE", children, ttl)]
        with unavailable("save_calls"):
            if not self._cluster:
                self._direct(commands)
                return
            pipe = self._redis.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            pipe.execute()

    def calls(self, task_ids: Sequence[str]) -> list[Optional[TaskCall]]:
        if not task_ids:
            return []
        size = self._bucket_size()
        newest = int(time.time() // size)
        buckets = range(newest, newest - int(self.settings.result_expires // size) - 2, -1)
        with unavailable("calls"):
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
        with unavailable("children"):
            ids = cast("list[bytes]", self._redis.zrange(self.key(CHILDREN_KEY, parent_id), -limit, -1))
        return [raw.decode() for raw in ids]

