"""The Redis backend's canvas storage: groups and chord counts (``CanvasBackend`` in base.py).

Keys (named in ``keys.py``), each after ``{prefix}:``:

- ``group:{id}`` (hash): ``members`` (packed ids), ``size``, ``created``, and for a
  chord ``callback_id``, ``callback`` (the schedule member of its callback message,
  packed as every schedule entry is: ``codec.schedule_member``), ``state`` (open, fired,
  failed), ``done`` and ``failed_member``. TTL ``result_expires``.
- ``chord:done:{id}`` (set): the indexes of the members counted successful.
- ``chords`` (sorted set): open chord id -> created, for the monitor.

``record_joined`` sends ``record.lua`` and ``join.lua`` in one MULTI/EXEC: Redis
runs both with nothing in between and applies both or neither, so a member's
outcome and its count are one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import redis
from redis.commands.core import Script
from redis.typing import EncodableT, FieldT

from ...envelope import pack, unpack
from ..base import RECENT_LIMIT, ScheduledMessage, StateChange
from ..canvas_store import CHORD_OPEN, CanvasBackend, ChordJoin, GroupInfo, GroupSpec
from .codec import schedule_member
from .keys import CHORD_DONE_KEY, GROUP_KEY, OPEN_CHORDS_KEY, SCHEDULE_KEY, TASK_KEY

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

_SCRIPT_DIR = Path(__file__).parent / "scripts"


@cache
def _join_source() -> str:
    return (_SCRIPT_DIR / "common.lua").read_text() + "\n" + (_SCRIPT_DIR / "join.lua").read_text()


def _group_info(group_id: str, fields: dict[bytes, bytes]) -> Optional[GroupInfo]:
    if b"members" not in fields:
        return None

    def text(name: bytes) -> Optional[str]:
        value = fields.get(name)
        return value.decode() if value else None

    return GroupInfo(group_id, tuple(unpack(fields[b"members"])), float(fields[b"created"]),
                     callback_id=text(b"callback_id"), done=int(fields.get(b"done", b"0")),
                     state=text(b"state"), failed_member=text(b"failed_member"))


class RedisCanvas(CanvasBackend):
    """Mixed into ``RedisBackend``; uses its connection, key names and record script."""

    _redis: redis.Redis
    _ttl: int

    def key(self, name: str, suffix: str = "") -> str:
        raise NotImplementedError

    def _record_call(self, changes: Sequence[StateChange],
                     scheduled: Sequence[ScheduledMessage]) -> tuple[Script, list[str], list[Any]]:
        raise NotImplementedError

    def _guard(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _join_script(self) -> Script:
        script: Optional[Script] = getattr(self, "_join", None)
        if script is None:
            script = self._redis.register_script(_join_source())
            self._join = script
        return script

    def save_groups(self, groups: Sequence[GroupSpec]) -> None:
        if not groups:
            return
        with self._guard("save_groups"):
            pipe = self._redis.pipeline(transaction=True)
            for g in groups:
                name = self.key(GROUP_KEY, g.group_id)
                fields: dict[FieldT, EncodableT] = {"members": pack(list(g.member_ids)),
                                          "size": len(g.member_ids), "created": repr(g.created)}
                if g.callback is not None:
                    fields.update(callback_id=g.callback.task_id, callback=schedule_member(g.callback),
                                  state=CHORD_OPEN, done=0)
                    pipe.zadd(self.key(OPEN_CHORDS_KEY), {g.group_id: g.created})
                pipe.delete(name)
                pipe.hset(name, mapping=fields)
                pipe.pexpire(name, self._ttl)
            pipe.execute()

    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        """``record.lua`` then ``join.lua`` in one MULTI/EXEC (see the module docstring)."""
        record, keys, args = self._record_call(changes, scheduled)
        join_args: list[Any] = [self.key(GROUP_KEY), self.key(CHORD_DONE_KEY), self.key(TASK_KEY),
                                self._ttl]
        for j in joins:
            join_args += [j.chord_id, j.index, j.task_id]
        with self._guard("record_joined"):
            pipe = self._redis.pipeline(transaction=True)
            if changes or scheduled:
                record(keys=keys, args=args, client=pipe)
            self._join_script()(keys=[self.key(SCHEDULE_KEY), self.key(OPEN_CHORDS_KEY)],
                                args=join_args, client=pipe)
            pipe.execute()

    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        with self._guard("group_info"):
            fields = cast("dict[bytes, bytes]", self._redis.hgetall(self.key(GROUP_KEY, group_id)))
        return _group_info(group_id, fields)

    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        if limit <= 0:
            return []
        index = self.key(OPEN_CHORDS_KEY)
        with self._guard("open_chords"):
            ids = [i.decode() for i in cast("list[bytes]", self._redis.zrange(index, 0, limit - 1))]
            pipe = self._redis.pipeline(transaction=False)
            for group_id in ids:
                pipe.hgetall(self.key(GROUP_KEY, group_id))
            rows = pipe.execute()
        found, gone = [], []
        for group_id, fields in zip(ids, rows):
            info = _group_info(group_id, fields)
            if info is None or info.state != CHORD_OPEN:
                gone.append(group_id)
            else:
                found.append(info)
        if gone:  # expired while open (e.g. a member was revoked): drop from the index
            with self._guard("open_chords"):
                self._redis.zrem(index, *gone)
        return found
