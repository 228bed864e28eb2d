"""Periodic schedules in the Redis backend (:class:`~yadtq.transports.periodic_store.PeriodicStore`).

Every step is one call of ``scripts/periodic.lua``; claiming a tick compares the
stored ``next_run`` text, checks it is due on Redis's clock, moves it on and adds the
tick's message to the schedule of delayed messages, all in the one script. Every key
is in slot group 0 (``layout.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Optional

import redis
from redis.commands.core import Script

from ...exceptions import BackendUnavailable
from ..base import ScheduledMessage
from ..periodic_store import PeriodicEntry, PeriodicStore
from .codec import float_text, schedule_member
from .keys import PERIODIC_DUE_KEY, PERIODIC_KEY, PERIODIC_NAMES_KEY, SCHEDULE_KEY

_SCRIPT_DIR = Path(__file__).parent / "scripts"


@cache
def _periodic_lua() -> str:
    return (_SCRIPT_DIR / "common.lua").read_text() + "\n" + (_SCRIPT_DIR / "periodic.lua").read_text()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _entry(row: Sequence[Any]) -> PeriodicEntry:
    name, spec, next_run, paused, last_run, last_task_id = row
    return PeriodicEntry(_text(name), bytes(spec), float(next_run), _text(paused) == "1",
                         float(last_run) if last_run else None,
                         _text(last_task_id) if last_task_id else None)


class RedisPeriodic(PeriodicStore):
    """The periodic steps of :class:`~yadtq.transports.redis.RedisBackend`."""

    _redis: redis.Redis

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        raise NotImplementedError  # RedisBackend.key

    def _call(self, op: str, args: Sequence[Any]) -> Any:
        script: Optional[Script] = getattr(self, "_periodic_script", None)
        if script is None:
            script = self._periodic_script = self._redis.register_script(_periodic_lua())
        keys = [self.key(PERIODIC_NAMES_KEY), self.key(PERIODIC_DUE_KEY), self.key(SCHEDULE_KEY)]
        try:
            return script(keys=keys, args=[op, self.key(PERIODIC_KEY), *args])
        except redis.RedisError as exc:
            raise BackendUnavailable(f"redis backend: periodic {op} failed: {exc}") from exc

    def save_periodic(self, name: str, spec: bytes, next_run: float) -> bool:
        return bool(self._call("save", [name, spec, float_text(next_run)]))

    def periodic_entries(self) -> list[PeriodicEntry]:
        return [_entry(row) for row in self._call("list", [])]

    def due_periodic(self, now: Optional[float] = None) -> list[PeriodicEntry]:
        found = [_entry(row) for row in self._call("due", ["" if now is None else float_text(now)])]
        return sorted(found, key=lambda e: e.next_run)

    def advance_periodic(self, name: str, expected: float, next_run: float,
                         tick: Optional[ScheduledMessage]) -> bool:
        args: list[Any] = [name, float_text(expected), float_text(next_run)]
        if tick is not None:
            args += [float_text(tick.due), schedule_member(tick), tick.task_id]
        return bool(self._call("advance", args))

    def pause_periodic(self, name: str, paused: bool, next_run: Optional[float] = None) -> bool:
        return bool(self._call("pause", [name, "1" if paused else "0",
                                         "" if next_run is None else float_text(next_run)]))

    def remove_periodic(self, name: str) -> bool:
        return bool(self._call("remove", [name]))
