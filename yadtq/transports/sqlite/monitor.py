"""The SQLite backend's monitoring ``snapshot``: read through the state index and the
counters of ``yadtq_totals``, never by scanning the stored tasks."""

from __future__ import annotations

import time

from ...states import FAILED, PROCESSING, RETRYING, SUCCESS
from ..base import RECENT_LIMIT, BackendSnapshot, Message, ScheduledMessage
from ..records import summarize, summarize_scheduled, totals_from
from .codec import _unpack_record
from .schema import _Database, _unpack_headers

# ``+expires`` keeps the planner on the state index (the expires index would scan everything).
_SELECT_IN_STATE = (
    "SELECT task_id, record FROM yadtq_tasks WHERE state = ? AND +expires >= ?"
    " ORDER BY updated {order} LIMIT ?"
)


class SqliteMonitor:
    """Mixed into :class:`~yadtq.transports.sqlite.SqliteBackend`."""

    _db: _Database

    def snapshot(self, limit: int = RECENT_LIMIT) -> BackendSnapshot:
        """Read in one transaction (a consistent view) through the state index and the
        counters: the cost follows what is listed, not how many results are stored."""
        now = time.time()
        limit = max(limit, 0)
        recent = min(limit, RECENT_LIMIT)
        with self._db.reading() as conn:
            conn.execute("BEGIN")
            try:
                counts = {state: int(conn.execute(
                    "SELECT COUNT(*) FROM yadtq_tasks WHERE state = ? AND +expires >= ?",
                    (state, now)).fetchone()[0]) for state in (PROCESSING, RETRYING)}
                listed = {
                    state: [summarize(_unpack_record(task_id, blob)) for task_id, blob in conn.execute(
                        _SELECT_IN_STATE.format(order=order), (state, now, count))]
                    for state, order, count in ((PROCESSING, "ASC", limit), (RETRYING, "ASC", limit),
                                                (SUCCESS, "DESC", recent), (FAILED, "DESC", recent))
                }
                (scheduled,) = conn.execute("SELECT COUNT(*) FROM yadtq_schedule").fetchone()
                due = conn.execute(
                    "SELECT task_id, due, queue, headers FROM yadtq_schedule ORDER BY due LIMIT ?",
                    (limit,)).fetchall()
                totals = dict(conn.execute("SELECT name, value FROM yadtq_totals").fetchall())
            finally:
                conn.execute("COMMIT")
        return BackendSnapshot(
            processing=counts[PROCESSING], retrying=counts[RETRYING], scheduled=int(scheduled),
            totals=totals_from(totals),
            processing_tasks=tuple(listed[PROCESSING]), retrying_tasks=tuple(listed[RETRYING]),
            scheduled_tasks=tuple(
                summarize_scheduled(ScheduledMessage(task_id, due_at, Message(
                    queue=queue, body=b"", headers=_unpack_headers(headers))))
                for task_id, due_at, queue, headers in due),
            recent_successes=tuple(listed[SUCCESS]), recent_failures=tuple(listed[FAILED]),
        )
