"""The SQLite backend's canvas storage: groups, chord counts (``CanvasBackend`` in base.py).

``yadtq_groups`` holds one row per group: its member ids, and for a chord the
callback message, the chord's state and how many members are done.
``yadtq_chord_done`` holds one row per member counted successful, keyed by
``(group_id, idx)``, so a member recorded twice is counted once. Counting runs in
the same ``BEGIN IMMEDIATE`` transaction as the member's outcome.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from ...envelope import pack, unpack
from ...states import FAILED, REVOKED, SUCCESS
from ..base import RECENT_LIMIT, Message, ScheduledMessage, StateChange, TaskRecord
from ..canvas_store import (
    CHORD_FAILED,
    CHORD_FIRED,
    CHORD_OPEN,
    CanvasBackend,
    ChordJoin,
    GroupInfo,
    GroupSpec,
)
from .schema import _Database, _pack_headers, _unpack_headers

if TYPE_CHECKING:
    from ...settings import Settings

CANVAS_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_groups (
    group_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    members BLOB NOT NULL,
    callback_id TEXT,
    callback BLOB,
    state TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    failed_member TEXT
);
CREATE INDEX IF NOT EXISTS yadtq_groups_state ON yadtq_groups (state, created);
CREATE TABLE IF NOT EXISTS yadtq_chord_done (
    group_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (group_id, idx)
);
"""
#: Tables whose expired rows the backend purges (each has an ``expires`` column).
CANVAS_TABLES = ("yadtq_groups", "yadtq_chord_done")

_GROUP_COLUMNS = "group_id, created, members, callback_id, state, done, failed_member"


def _pack_callback(entry: ScheduledMessage) -> bytes:
    m = entry.message
    return pack([entry.task_id, entry.due, m.queue, m.body, m.key, _pack_headers(m.headers)])


def _unpack_callback(blob: bytes) -> ScheduledMessage:
    task_id, due, queue, body, key, headers = unpack(blob)
    return ScheduledMessage(task_id, due, Message(queue, body, key, _unpack_headers(headers)))


def _info(row: Sequence[Any]) -> GroupInfo:
    group_id, created, members, callback_id, state, done, failed_member = row
    return GroupInfo(group_id, tuple(unpack(members)), created, callback_id=callback_id,
                     done=int(done), state=state, failed_member=failed_member)


class SqliteCanvas(CanvasBackend):
    """Mixed into ``SqliteBackend``; uses its database and its ``record`` steps."""

    _db: _Database
    settings: Settings

    def _record_in(self, conn: sqlite3.Connection, changes: Sequence[StateChange],
                   scheduled: Sequence[ScheduledMessage], now: float) -> list[str]:
        raise NotImplementedError

    def _after_record(self, ready: list[str], now: float) -> None:
        raise NotImplementedError

    def _load(self, conn: sqlite3.Connection, task_ids: Sequence[str],
              now: float) -> dict[str, TaskRecord]:
        raise NotImplementedError

    def _expires(self, now: float) -> float:
        return now + self.settings.result_expires

    def save_groups(self, groups: Sequence[GroupSpec]) -> None:
        if not groups:
            return
        now = time.time()
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO yadtq_groups (group_id, created, expires, members,"
                " callback_id, callback, state, done, failed_member)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                [(g.group_id, g.created, self._expires(now), pack(list(g.member_ids)),
                  g.callback.task_id if g.callback else None,
                  _pack_callback(g.callback) if g.callback else None,
                  CHORD_OPEN if g.callback else None) for g in groups])

    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        """The outcome, its follow-ups and the chord counts in one transaction."""
        now = time.time()
        with self._db.transaction() as conn:
            ready = self._record_in(conn, changes, scheduled, now)
            for join in joins:
                self._join(conn, join, now)
        self._after_record(ready, now)

    def _join(self, conn: sqlite3.Connection, join: ChordJoin, now: float) -> None:
        row = conn.execute(
            "SELECT state, callback, members FROM yadtq_groups"
            " WHERE group_id = ? AND expires >= ?", (join.chord_id, now)).fetchone()
        if row is None or row[0] != CHORD_OPEN or row[1] is None:
            return
        record = self._load(conn, [join.task_id], now).get(join.task_id)
        if record is None:
            return
        if record.state in (FAILED, REVOKED):
            conn.execute("UPDATE yadtq_groups SET state = ?, failed_member = ? WHERE group_id = ?",
                         (CHORD_FAILED, join.task_id, join.chord_id))
            conn.execute("DELETE FROM yadtq_chord_done WHERE group_id = ?", (join.chord_id,))
        elif record.state == SUCCESS:
            conn.execute("INSERT OR IGNORE INTO yadtq_chord_done (group_id, idx, expires)"
                         " VALUES (?, ?, ?)", (join.chord_id, join.index, self._expires(now)))
            (done,) = conn.execute("SELECT COUNT(*) FROM yadtq_chord_done WHERE group_id = ?",
                                   (join.chord_id,)).fetchone()
            if done < len(unpack(row[2])):
                conn.execute("UPDATE yadtq_groups SET done = ? WHERE group_id = ?",
                             (done, join.chord_id))
                return
            conn.execute("UPDATE yadtq_groups SET state = ?, done = ? WHERE group_id = ?",
                         (CHORD_FIRED, done, join.chord_id))
            conn.execute("DELETE FROM yadtq_chord_done WHERE group_id = ?", (join.chord_id,))
            entry = _unpack_callback(row[1])
            self._record_in(conn, [], [entry], now)

    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        with self._db.reading() as conn:
            row = conn.execute(f"SELECT {_GROUP_COLUMNS} FROM yadtq_groups"
                               " WHERE group_id = ? AND expires >= ?",
                               (group_id, time.time())).fetchone()
        return _info(row) if row is not None else None

    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_GROUP_COLUMNS} FROM yadtq_groups"
                                " WHERE state = ? AND +expires >= ? ORDER BY created LIMIT ?",
                                (CHORD_OPEN, time.time(), max(limit, 0))).fetchall()
        return [_info(row) for row in rows]
