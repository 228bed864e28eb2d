"""Task details in the SQLite backend (:class:`~yadtq.transports.details_store.DetailsBackend`).

One row per task in ``yadtq_calls``: its packed call, its parent id and when it
expires; the children of a task are the rows naming it as parent, read through a
partial index and bounded when read. Expired rows are purged with the results.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ..details_store import CHILDREN_LIMIT, EncodedCall, EncodedDetails, TaskCall
from .schema import _chunks, _Database, _marks

if TYPE_CHECKING:
    from ...settings import Settings

DETAILS_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_calls (
    task_id TEXT PRIMARY KEY,
    parent_id TEXT,
    started REAL NOT NULL,
    expires REAL NOT NULL,
    call BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS yadtq_calls_parent ON yadtq_calls (parent_id, started)
    WHERE parent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS yadtq_calls_expires ON yadtq_calls (expires);
"""

DETAILS_TABLES = ("yadtq_calls",)


class SqliteDetails(EncodedDetails):
    """The task-details steps of :class:`~yadtq.transports.sqlite.SqliteBackend`."""

    _db: _Database
    settings: Settings

    def _save_encoded(self, calls: Sequence[EncodedCall]) -> None:
        """Store ``(task id, parent id, encoded call)`` rows: one transaction."""
        if not calls:
            return
        now = time.time()
        expires = now + self.settings.result_expires
        with self._db.transaction() as conn:
            # A task started again (a retry) keeps its first start: its place among siblings.
            conn.executemany(
                "INSERT INTO yadtq_calls (task_id, parent_id, started, expires, call) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (task_id) DO UPDATE SET expires = excluded.expires, call = excluded.call",
                [(task_id, parent_id, now, expires, blob) for task_id, parent_id, blob in calls])

    def calls(self, task_ids: Sequence[str]) -> list[Optional[TaskCall]]:
        if not task_ids:
            return []
        now = time.time()
        found: dict[str, bytes] = {}
        with self._db.reading() as conn:
            for chunk in _chunks(task_ids):
                found.update(conn.execute(
                    f"SELECT task_id, call FROM yadtq_calls WHERE task_id IN ({_marks(len(chunk))})"
                    " AND expires >= ?", (*chunk, now)).fetchall())
        return [TaskCall.decode(bytes(found[t])) if t in found else None for t in task_ids]

    def children(self, parent_id: str, limit: int = CHILDREN_LIMIT) -> list[str]:
        if limit <= 0:
            return []
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT task_id FROM yadtq_calls WHERE parent_id = ? AND expires >= ?"
                " ORDER BY started DESC, task_id DESC LIMIT ?",
                (parent_id, time.time(), min(limit, CHILDREN_LIMIT))).fetchall()
        return [row[0] for row in reversed(rows)]
