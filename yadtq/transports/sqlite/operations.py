"""The SQLite backend's operator support: failed messages kept for retry, the control channel.

``yadtq_failed_messages`` keeps the message of each task that finally failed until
``result_expires``; ``yadtq_control`` holds commands queued for named workers, each
taken (deleted) by its worker in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from ...envelope import pack, unpack
from ..base import FailedMessage
from .schema import _Database

if TYPE_CHECKING:
    from ...settings import Settings

#: Control commands older than this are dropped unread (their worker is gone).
CONTROL_TTL = 3600.0


class SqliteOperations:
    """Mixed into :class:`~yadtq.transports.sqlite.SqliteBackend`."""

    _db: _Database
    settings: Settings

    def keep_failed(self, failed: Sequence[FailedMessage]) -> None:
        if not failed:
            return
        now = time.time()
        expires = now + self.settings.result_expires
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO yadtq_failed_messages (task_id, name, failed, expires, body)"
                " VALUES (?, ?, ?, ?, ?)",
                [(m.task_id, m.name, m.failed, expires, m.body) for m in failed])
            conn.execute("DELETE FROM yadtq_failed_messages WHERE rowid IN (SELECT rowid FROM"
                         " yadtq_failed_messages WHERE expires < ? LIMIT 1000)", (now,))

    def failed_messages(self, limit: int = 1000) -> list[FailedMessage]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT task_id, name, failed, body FROM yadtq_failed_messages WHERE expires >= ?"
                " ORDER BY failed DESC LIMIT ?", (time.time(), max(limit, 0))).fetchall()
        return [FailedMessage(task_id, name, failed, body) for task_id, name, failed, body in rows]

    def take_failed(self, task_ids: Sequence[str]) -> list[Optional[FailedMessage]]:
        now = time.time()
        found: list[Optional[FailedMessage]] = []
        with self._db.transaction() as conn:
            for task_id in task_ids:
                row = conn.execute("SELECT name, failed, expires, body FROM yadtq_failed_messages"
                                   " WHERE task_id = ?", (task_id,)).fetchone()
                conn.execute("DELETE FROM yadtq_failed_messages WHERE task_id = ?", (task_id,))
                if row is None or row[2] < now:
                    found.append(None)
                else:
                    found.append(FailedMessage(task_id, row[0], row[1], row[3]))
        return found

    def send_control(self, workers: Sequence[str], command: Mapping[str, Any]) -> None:
        now = time.time()
        blob = pack(dict(command))
        with self._db.transaction() as conn:
            conn.executemany("INSERT INTO yadtq_control (worker, command, created) VALUES (?, ?, ?)",
                             [(worker, blob, now) for worker in workers])
            conn.execute("DELETE FROM yadtq_control WHERE created < ?", (now - CONTROL_TTL,))

    def take_control(self, worker: str) -> list[dict[str, Any]]:
        with self._db.reading() as conn:  # the common case, nothing queued: no write lock
            if conn.execute("SELECT 1 FROM yadtq_control WHERE worker = ? LIMIT 1",
                            (worker,)).fetchone() is None:
                return []
        with self._db.transaction() as conn:
            # BEGIN IMMEDIATE holds the write lock: no command lands between the two statements.
            rows = conn.execute("SELECT id, command FROM yadtq_control WHERE worker = ? ORDER BY id",
                                (worker,)).fetchall()
            conn.execute("DELETE FROM yadtq_control WHERE worker = ?", (worker,))
        return [unpack(blob) for _, blob in rows]
