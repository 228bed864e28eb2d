"""Task details in the Redis backend (:class:`~yadtq.transports.details_store.DetailsBackend`).

Keys, each after ``{prefix}:``:

- ``call:<task id>``: string, the packed call; TTL ``result_expires``;
- ``children:<task id>``: sorted set, child task id -> when it first started (a
  retry keeps its place), the newest ``CHILDREN_LIMIT``; TTL ``result_expires`` from
  its latest child.

Written in one pipeline per batch of started tasks; each key is read alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Optional, cast

import redis

from ...exceptions import BackendUnavailable
from ..details_store import CHILDREN_LIMIT, DetailsBackend, TaskCall

if TYPE_CHECKING:
    from ...settings import Settings

CALL_KEY = "call:"
CHILDREN_KEY = "children:"


class RedisDetails(DetailsBackend):
    """Mixed into :class:`~yadtq.transports.redis.RedisBackend`."""

    _redis: redis.Redis
    settings: Settings
    key: Callable[..., str]

    def save_calls(self, calls: Sequence[TaskCall]) -> None:
        if not calls:
            return
        ttl = max(1, int(self.settings.result_expires))
        now = time.time()
        with _unavailable("save_calls"):
            pipe = self._redis.pipeline(transaction=False)
            for call in calls:
                pipe.set(self.key(CALL_KEY, call.task_id), call.encode(), ex=ttl)
                if call.parent_id is not None:
                    children = self.key(CHILDREN_KEY, call.parent_id)
                    pipe.zadd(children, {call.task_id: now}, nx=True)
                    pipe.zremrangebyrank(children, 0, -CHILDREN_LIMIT - 1)
                    pipe.expire(children, ttl)
            pipe.execute()

    def calls(self, task_ids: Sequence[str]) -> list[Optional[TaskCall]]:
        if not task_ids:
            return []
        with _unavailable("calls"):
            pipe = self._redis.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.get(self.key(CALL_KEY, task_id))
            blobs = cast("list[Optional[bytes]]", pipe.execute())
        return [TaskCall.decode(blob) if blob is not None else None for blob in blobs]

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
