"""The in-memory backend's canvas storage: groups and chord counts (``CanvasBackend``;
``canvas_store.py``), in a dict under the backend's condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional

from ..states import FAILED, REVOKED, SUCCESS
from .canvas_store import CHORD_FAILED, CHORD_FIRED, CHORD_OPEN, CanvasBackend, GroupInfo
from .types import RECENT_LIMIT, ScheduledMessage, StateChange, TaskRecord

if TYPE_CHECKING:
    from ..settings import Settings
    from .canvas_store import ChordJoin, GroupSpec


class MemoryCanvas(CanvasBackend):
    """Mixed into :class:`~yadtq.transports.memory.MemoryBackend`; uses its condition,
    records and schedule."""

    settings: Settings
    _cond: threading.Condition
    _schedule: dict[tuple[str, float], tuple[ScheduledMessage, float]]
    _groups: dict[str, _StoredGroup]

    def _current(self, task_id: str, now: float) -> Optional[TaskRecord]:
        raise NotImplementedError

    def _record_locked(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                       now: float) -> None:
        raise NotImplementedError

    def save_groups(self, groups: Sequence[GroupSpec]) -> None:
        now = time.time()
        with self._cond:
            for spec in groups:
                info = GroupInfo(spec.group_id, spec.member_ids, spec.created,
                                 callback_id=spec.callback.task_id if spec.callback else None,
                                 state=CHORD_OPEN if spec.callback else None)
                self._groups[spec.group_id] = _StoredGroup(info, spec.callback, set(),
                                                           now + self.settings.result_expires)

    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        now = time.time()
        with self._cond:
            self._record_locked(changes, scheduled, now)
            for join in joins:
                self._join(join, now)
            self._cond.notify_all()

    def _join(self, join: ChordJoin, now: float) -> None:
        stored = self._group(join.chord_id, now)
        record = self._current(join.task_id, now)
        if stored is None or stored.callback is None or stored.info.state != CHORD_OPEN or record is None:
            return
        if record.state in (FAILED, REVOKED):
            stored.info = replace(stored.info, state=CHORD_FAILED, failed_member=join.task_id)
        elif record.state == SUCCESS:
            stored.done.add(join.index)
            stored.info = replace(stored.info, done=len(stored.done))
            if len(stored.done) >= stored.info.size:
                stored.info = replace(stored.info, state=CHORD_FIRED)
                entry = stored.callback
                self._schedule[(entry.task_id, entry.due)] = (entry, 0.0)

    def _group(self, group_id: str, now: float) -> Optional[_StoredGroup]:
        stored = self._groups.get(group_id)
        if stored is not None and stored.expires < now:
            del self._groups[group_id]
            return None
        return stored

    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        with self._cond:
            stored = self._group(group_id, time.time())
            return stored.info if stored is not None else None

    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        now = time.time()
        with self._cond:
            found = [s.info for s in list(self._groups.values())
                     if s.info.state == CHORD_OPEN and s.expires >= now]
        return sorted(found, key=lambda info: info.created)[:max(limit, 0)]


@dataclass
class _StoredGroup:
    info: GroupInfo
    callback: Optional[ScheduledMessage]
    #: Indexes of the chord's members counted successful.
    done: set[int]
    expires: float
