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
from .layout import HOME, Layout

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
    layout: Layout

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        raise NotImplementedError

    def _record_calls(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      states: bool = False) -> list[tuple[Script, list[str], list[Any]]]:
        raise NotImplementedError

    def _calls(self, what: str, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        raise NotImplementedError

    def _pipeline(self) -> Any:
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
            pipe = self._pipeline()
            for g in groups:
                name = self.key(GROUP_KEY, g.group_id)
                fields: dict[FieldT, EncodableT] = {"members": pack(list(g.member_ids)),
                                          "size": len(g.member_ids), "created": repr(g.created)}
                if g.callback is not None:
                    fields.update(callback_id=g.callback.task_id, callback=schedule_member(g.callback),
                                  state=CHORD_OPEN, done=0)
                    pipe.zadd(self._open_chords(g.group_id), {g.group_id: g.created})
                pipe.delete(name)
                pipe.hset(name, mapping=fields)
                pipe.pexpire(name, self._ttl)
            pipe.execute()

    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        """``record.lua`` then ``join.lua`` in one MULTI/EXEC (see the module docstring).

        With several slot groups (Redis Cluster) a member's record and its chord are
        usually in different slots: the record scripts run first and return the states
        they leave, then the join scripts count them. A worker killed between the two
        leaves the delivery not reported done: its copy, delivered again, counts the
        member again (``canvas.followups.record_unrun``; see ``docs/semantics.md``).
        """
        if self.layout.groups == 1:
            self._calls("record_joined", [*self._record_calls(changes, scheduled),
                                          self._join_call(HOME, joins, {})])
            return
        calls = self._record_calls(changes, scheduled, states=True)
        stored: dict[str, str] = {}
        for reply in self._calls("record_joined", calls):
            stored.update((t.decode(), s.decode()) for t, s in zip(reply[::2], reply[1::2]))
        # Members not in this batch (a redelivered copy's count: followups.record_unrun):
        # their records as stored, read in one round trip.
        unread = list(dict.fromkeys(j.task_id for j in joins if j.task_id not in stored))
        if unread:
            with self._guard("record_joined"):
                pipe = self._redis.pipeline(transaction=False)
                for task_id in unread:
                    pipe.hget(self.layout.key(TASK_KEY, task_id), "state")
                found = cast("list[Optional[bytes]]", pipe.execute())
            stored.update((t, s.decode() if s else "unknown") for t, s in zip(unread, found))
        by_chord: dict[int, list[ChordJoin]] = {}
        for j in joins:
            by_chord.setdefault(self.layout.group(j.chord_id), []).append(j)
        self._calls("record_joined", [self._join_call(g, js, stored) for g, js in by_chord.items()])

    def _join_call(self, group: int, joins: Sequence[ChordJoin],
                   stored: dict[str, str]) -> tuple[Script, list[str], list[Any]]:
        """``join.lua`` for the chords of one group; a member's state is the one
        ``stored`` gives, else read from its record in the script (same slot)."""
        args: list[Any] = [self.layout.key(GROUP_KEY, group=group),
                           self.layout.key(CHORD_DONE_KEY, group=group),
                           self.layout.key(TASK_KEY, group=group), self._ttl]
        for j in joins:
            args += [j.chord_id, j.index, j.task_id, stored.get(j.task_id, "")]
        keys = [self.layout.key(SCHEDULE_KEY, group=group), self._open_chords(joins[0].chord_id)
                if joins else self.layout.key(OPEN_CHORDS_KEY, group=group)]
        return self._join_script(), keys, args

    def _open_chords(self, chord_id: str) -> str:
        return self.layout.key(OPEN_CHORDS_KEY, group=self.layout.group(chord_id))

    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        with self._guard("group_info"):
            fields = cast("dict[bytes, bytes]", self._redis.hgetall(self.key(GROUP_KEY, group_id)))
        return _group_info(group_id, fields)

    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        if limit <= 0:
            return []
        with self._guard("open_chords"):
            pipe = self._redis.pipeline(transaction=False)
            for g in self.layout.all_groups():
                pipe.zrange(self.layout.key(OPEN_CHORDS_KEY, group=g), 0, limit - 1, withscores=True)
            listed = sorted((pair for rows in pipe.execute() for pair in rows), key=lambda p: float(p[1]))
            ids = [i.decode() for i, _ in listed[:limit]]
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
                pipe = self._redis.pipeline(transaction=False)
                for chord_id in gone:
                    pipe.zrem(self._open_chords(chord_id), chord_id)
                pipe.execute()
        return found
