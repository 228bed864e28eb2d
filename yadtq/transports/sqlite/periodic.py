"""Periodic schedules in the SQLite backend (:class:`~yadtq.transports.periodic_store.PeriodicStore`).

One row per schedule in ``yadtq_periodic``; a due tick is claimed with a conditional
``UPDATE`` and its message inserted into ``yadtq_schedule`` in the same
``BEGIN IMMEDIATE`` transaction, so it is enqueued once or not at all.
"""

from __future__ import annotations

import time
from typing import Optional

from ..base import ScheduledMessage
from ..periodic_store import PeriodicEntry, PeriodicStore
from .schema import _Database, _pack_headers

PERIODIC_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_periodic (
    name TEXT PRIMARY KEY,
    spec BLOB NOT NULL,
    next_run REAL NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    last_run REAL,
    last_task_id TEXT
);
CREATE INDEX IF NOT EXISTS yadtq_periodic_next ON yadtq_periodic (next_run);
"""

_COLUMNS = "name, spec, next_run, paused, last_run, last_task_id"


def _entry(row: tuple[str, bytes, float, int, Optional[float], Optional[str]]) -> PeriodicEntry:
    name, spec, next_run, paused, last_run, last_task_id = row
    return PeriodicEntry(name, bytes(spec), float(next_run), bool(paused), last_run, last_task_id)


class SqlitePeriodic(PeriodicStore):
    """The periodic steps of :class:`~yadtq.transports.sqlite.SqliteBackend`."""

    _db: _Database

    def save_periodic(self, name: str, spec: bytes, next_run: float) -> bool:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT spec FROM yadtq_periodic WHERE name = ?", (name,)).fetchone()
            if row is not None and bytes(row[0]) == spec:
                return False
            if row is None:
                conn.execute("INSERT INTO yadtq_periodic (name, spec, next_run) VALUES (?, ?, ?)",
                             (name, spec, next_run))
            else:
                conn.execute("UPDATE yadtq_periodic SET spec = ?, next_run = ? WHERE name = ?",
                             (spec, next_run, name))
            return True

    def periodic_entries(self) -> list[PeriodicEntry]:
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM yadtq_periodic ORDER BY name").fetchall()
        return [_entry(row) for row in rows]

    def due_periodic(self, now: Optional[float] = None) -> list[PeriodicEntry]:
        now = time.time() if now is None else now
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM yadtq_periodic WHERE next_run <= ?"
                                " AND paused = 0 ORDER BY next_run", (now,)).fetchall()
        return [_entry(row) for row in rows]

    def advance_periodic(self, name: str, expected: float, next_run: float,
                         tick: Optional[ScheduledMessage]) -> bool:
        now = time.time()
        with self._db.transaction() as conn:
            if tick is None:
                cursor = conn.execute(
                    "UPDATE yadtq_periodic SET next_run = ? WHERE name = ? AND next_run = ?"
                    " AND paused = 0 AND next_run <= ?", (next_run, name, expected, now))
            else:
                cursor = conn.execute(
                    "UPDATE yadtq_periodic SET next_run = ?, last_run = ?, last_task_id = ?"
                    " WHERE name = ? AND next_run = ? AND paused = 0 AND next_run <= ?",
                    (next_run, tick.due, tick.task_id, name, expected, now))
            if cursor.rowcount != 1:
                return False
            if tick is not None:
                m = tick.message
                conn.execute(
                    "INSERT OR IGNORE INTO yadtq_schedule (task_id, due, queue, body, key, headers)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (tick.task_id, tick.due, m.queue, m.body, m.key, _pack_headers(m.headers)))
            return True

    def pause_periodic(self, name: str, paused: bool, next_run: Optional[float] = None) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE yadtq_periodic SET paused = ?, next_run = COALESCE(?, next_run) WHERE name = ?",
                (int(paused), next_run, name))
            return cursor.rowcount == 1

    def remove_periodic(self, name: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM yadtq_periodic WHERE name = ?", (name,))
            return cursor.rowcount == 1
