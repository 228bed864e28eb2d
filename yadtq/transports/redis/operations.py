"""The Redis backend's operator support: failed messages kept for retry, the control channel.

Keys, each after ``{prefix}:``:

- ``failed-msg:<task id>``: string, packed ``[name, failed, body]``; TTL ``result_expires``;
- ``failed-msgs``: sorted set, task id -> when it failed (ids whose string expired are
  skipped and trimmed when read);
- ``control:<worker>``: list of packed commands for one worker; TTL ``CONTROL_TTL``.

All in slot group 0 (``layout.py``), so the multi-key steps work on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

import redis

from ...envelope import pack, unpack
from ...exceptions import BackendUnavailable
from ..base import FailedMessage
from .layout import HOME

if TYPE_CHECKING:
    from ...settings import Settings

FAILED_MESSAGE_KEY = "failed-msg:"
FAILED_INDEX_KEY = "failed-msgs"
CONTROL_KEY = "control:"
#: Seconds a command waits for its worker before it is dropped unread.
CONTROL_TTL = 3600


class RedisOperations:
    """Mixed into :class:`~yadtq.transports.redis.RedisBackend`."""

    _redis: redis.Redis
    settings: Settings
    key: Callable[..., str]

    def keep_failed(self, failed: Sequence[FailedMessage]) -> None:
        if not failed:
            return
        ttl = max(1, int(self.settings.result_expires))
        index = self.key(FAILED_INDEX_KEY)
        with _unavailable("keep_failed"):
            pipe = self._redis.pipeline(transaction=True)
            for m in failed:
                pipe.set(self.key(FAILED_MESSAGE_KEY, m.task_id, group=HOME),
                         pack([m.name, m.failed, m.body]), ex=ttl)
                pipe.zadd(index, {m.task_id: m.failed})
            pipe.zremrangebyscore(index, "-inf", max(failed, key=lambda m: m.failed).failed - ttl)
            pipe.execute()

    def failed_messages(self, limit: int = 1000) -> list[FailedMessage]:
        if limit <= 0:
            return []
        with _unavailable("failed_messages"):
            ids = [raw.decode() for raw in cast("list[bytes]", self._redis.zrevrange(
                self.key(FAILED_INDEX_KEY), 0, limit - 1))]
            if not ids:
                return []
            blobs = cast("list[Optional[bytes]]", self._redis.mget(
                [self.key(FAILED_MESSAGE_KEY, task_id, group=HOME) for task_id in ids]))
            gone = [task_id for task_id, blob in zip(ids, blobs) if blob is None]
            if gone:
                self._redis.zrem(self.key(FAILED_INDEX_KEY), *gone)
        return [_failed(task_id, blob) for task_id, blob in zip(ids, blobs) if blob is not None]

    def take_failed(self, task_ids: Sequence[str]) -> list[Optional[FailedMessage]]:
        if not task_ids:
            return []
        with _unavailable("take_failed"):
            pipe = self._redis.pipeline(transaction=True)
            for task_id in task_ids:
                pipe.getdel(self.key(FAILED_MESSAGE_KEY, task_id, group=HOME))
            pipe.zrem(self.key(FAILED_INDEX_KEY), *task_ids)
            replies = pipe.execute()
        return [None if blob is None else _failed(task_id, blob)
                for task_id, blob in zip(task_ids, replies)]

    def send_control(self, workers: Sequence[str], command: Mapping[str, Any]) -> None:
        blob = pack(dict(command))
        with _unavailable("send_control"):
            pipe = self._redis.pipeline(transaction=True)
            for worker in workers:
                pipe.rpush(self.key(CONTROL_KEY, worker, group=HOME), blob)
                pipe.expire(self.key(CONTROL_KEY, worker, group=HOME), CONTROL_TTL)
            pipe.execute()
            # Outside the transaction (Redis Cluster routes no PUBLISH in one): wakes the
            # worker's listener (wakeups.py) to take it now; its fallback look finds it anyway.
            for worker in workers:
                self._redis.publish(self.key(CONTROL_KEY, worker, group=HOME), b"")

    def take_control(self, worker: str) -> list[dict[str, Any]]:
        key = self.key(CONTROL_KEY, worker, group=HOME)
        with _unavailable("take_control"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            blobs, _ = pipe.execute()
        return [cast("dict[str, Any]", unpack(blob)) for blob in blobs]


def _failed(task_id: str, blob: bytes) -> FailedMessage:
    name, failed, body = unpack(blob)
    return FailedMessage(task_id, name, float(failed), body)


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise BackendUnavailable(f"redis backend: {what} failed: {exc}") from exc
