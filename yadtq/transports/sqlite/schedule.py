"""The SQLite backend's schedule: ``claim_due``, ``release_due`` and ``next_due`` over
``yadtq_schedule``, whose rows are leased to the claimant until ``leased_until``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Optional

from ..base import Message, ScheduledMessage
from .schema import _Database, _unpack_headers


class SqliteSchedule:
    """Mixed into :class:`~yadtq.transports.sqlite.SqliteBackend`."""

    _db: _Database

    def claim_due(self, now: Optional[float], limit: int, lease: float) -> list[ScheduledMessage]:
        """Lease up to ``limit`` due messages in one transaction: each goes to one caller,
        and one not released within ``lease`` seconds is handed out again."""
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT task_id, due, queue, body, key, headers FROM yadtq_schedule"
                " WHERE due <= ? AND leased_until <= ? ORDER BY due LIMIT ?",
                (now, now, limit)).fetchall()
            conn.executemany(
                "UPDATE yadtq_schedule SET leased_until = ? WHERE task_id = ? AND due = ?",
                [(now + lease, row[0], row[1]) for row in rows])
        return [ScheduledMessage(task_id=task_id, due=due, message=Message(
                    queue=queue, body=body, key=key, headers=_unpack_headers(headers)))
                for task_id, due, queue, body, key, headers in rows]

    def release_due(self, entries: Sequence[ScheduledMessage]) -> None:
        if not entries:
            return
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM yadtq_schedule WHERE task_id = ? AND due = ?",
                             [(e.task_id, e.due) for e in entries])

    def next_due(self) -> Optional[float]:
        with self._db.reading() as conn:
            (due,) = conn.execute("SELECT MIN(due) FROM yadtq_schedule").fetchone()
        return None if due is None else float(due)
