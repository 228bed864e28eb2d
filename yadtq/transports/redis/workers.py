"""The Redis backend's worker registry: heartbeats stamped with Redis's clock (one script
per slot group, each group keeping its own liveness watch), the workers' reports, the
clock itself and the failure history.

Keys, each after ``{prefix}:`` (``keys.py``): ``workers``, ``workers:instance``,
``instances``, ``workers:seen`` and ``watch`` in every slot group; ``failures``, a capped
list.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Optional, cast

import msgpack
from redis.commands.core import Script

from ...envelope import pack
from ...exceptions import YADTQError
from ..base import WorkerFailure, WorkerInfo, silent_running
from ..records import PRUNE_BATCH, Watch, silence
from .codec import decode_worker, float_text, packb
from .grouped import GroupedScripts, unavailable
from .keys import (
    FAILURES_KEY,
    INSTANCES_KEY,
    WATCH_KEY,
    WORKER_INSTANCE_KEY,
    WORKERS_KEY,
    WORKERS_RUNNING_KEY,
    WORKERS_SEEN_KEY,
)
from .layout import HOME

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...settings import Settings

logger = logging.getLogger(__name__)


class RedisWorkers(GroupedScripts):
    """``heartbeat``, ``workers``, ``time``, ``record_failure`` and ``failures`` of
    ``RedisBackend``."""

    _scripts: dict[str, Script]
    settings: Settings

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        raise NotImplementedError

    def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        raise NotImplementedError

    def heartbeat(self, info: WorkerInfo) -> None:
        """Store the report, stamped with Redis's clock, move the watch on and prune at
        most ``PRUNE_BATCH`` workers not heard from for ``worker_retention``: one script
        per slot group (each group's claims judge liveness from its own copy)."""
        k = self._group_key
        args = [info.worker, info.instance, info.state, pack(dataclasses.asdict(info)),
                "1" if info.resumed else "", float_text(self.settings.worker_retention), PRUNE_BATCH]
        self._calls("heartbeat", [
            (self._scripts["heartbeat"], [k(WORKERS_KEY, g), k(WORKER_INSTANCE_KEY, g),
                                          k(INSTANCES_KEY, g), k(WORKERS_SEEN_KEY, g), k(WATCH_KEY, g),
                                          k(WORKERS_RUNNING_KEY, g)],
             args) for g in self.layout.all_groups()])

    def workers(self) -> list[WorkerInfo]:
        """Every report, with when Redis last heard from each worker and its silence.

        With several slot groups a worker is listed while any group still has it (each
        group prunes on its own heartbeat script): one no longer listed is pruned
        everywhere, so no claim takes its instance for alive any more.
        """
        k = self._group_key
        replies = self._calls("workers", [
            (self._scripts["workers"], [k(WORKERS_KEY, g), k(WORKERS_SEEN_KEY, g), k(WATCH_KEY, g)], [])
            for g in self.layout.all_groups()])
        return _reports(replies)

    def silent_workers(self, after: float) -> list[WorkerInfo]:
        """Running workers not heard from for more than ``after`` seconds, read through the
        running workers' index (``silent.lua``): the stopped workers the registry keeps
        are never read. Every slot group hears every heartbeat: the home group's answer
        is the whole one."""
        k = self._group_key
        reply = self._run("silent", [k(WORKERS_KEY, HOME), k(WORKERS_RUNNING_KEY, HOME),
                                     k(WATCH_KEY, HOME)], [float_text(after)])
        return silent_running(_reports([reply]), after)

    def time(self) -> float:
        """Redis's clock (``TIME``)."""
        with unavailable("time"):
            seconds, micros = self._redis.time()
        return seconds + micros / 1e6

    def record_failure(self, failure: WorkerFailure) -> None:
        if self.settings.failure_history <= 0:
            return
        packed = packb([failure.worker, failure.instance, failure.last_heartbeat, failure.detected])
        self._run("failure", [self.key(FAILURES_KEY)],
                  [failure.instance, packed, self.settings.failure_history])

    def failures(self, limit: int = 100) -> list[WorkerFailure]:
        if limit <= 0:
            return []
        with unavailable("failures"):
            rows = cast("list[bytes]", self._redis.lrange(self.key(FAILURES_KEY), 0, limit - 1))
        return [WorkerFailure(*msgpack.unpackb(raw, raw=False)) for raw in rows]


def _reports(replies: Sequence[Any]) -> list[WorkerInfo]:
    """The reports of ``workers.lua`` (or ``silent.lua``) replies, one per slot group, with
    when Redis last heard from each worker and its silence on the home group's watch."""
    now, since, last, _, _ = replies[HOME]
    watch = Watch(float(now), float(since or 0), float(last or 0))
    merged: dict[bytes, bytes] = {}
    heard: dict[bytes, float] = {}
    for *_, reports, seen in reversed(replies):  # group 0's report wins
        merged.update(zip(reports[::2], reports[1::2]))
        heard.update((name, float(at)) for name, at in zip(seen[::2], seen[1::2]))
    found = []
    for name, raw in merged.items():
        try:
            info = decode_worker(raw)
        except (YADTQError, TypeError, ValueError, AttributeError) as exc:
            logger.warning("skipping an unreadable worker report: %s", exc)
            continue
        at = heard.get(name, info.last_heartbeat)
        found.append(dataclasses.replace(info, last_heartbeat=at, silent=silence(at, watch)))
    return found
