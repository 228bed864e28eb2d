"""The SQLite backend's flow control step (``LimitsBackend`` in base.py).

Table ``yadtq_rate_starts``: one row per start (or reservation) of a rate-limited
task name, kept for one period. ``admit_rate`` runs in one write transaction, so
workers sharing the file decide one after the other; the decision itself is
``flow.admit`` (the reference), and a refused attempt's schedule entry is written in
that same transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from ...flow import admit, slack
from ..base import ScheduledMessage, StateChange
from ..limits_store import LimitsBackend, RateRequest

if TYPE_CHECKING:
    from .schema import _Database

LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_rate_starts (
    name TEXT NOT NULL,
    attempt TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (name, attempt)
);
CREATE INDEX IF NOT EXISTS yadtq_rate_starts_at ON yadtq_rate_starts (name, at);
"""


class SqliteLimits(LimitsBackend):
    """Mixed into ``SqliteBackend``; uses its database and its ``record`` step."""

    _db: _Database

    def _record_in(self, conn: sqlite3.Connection, changes: Sequence[StateChange],
                   scheduled: Sequence[ScheduledMessage], now: float) -> list[str]:
        raise NotImplementedError

    def admit_rate(self, requests: Sequence[RateRequest]) -> list[Optional[float]]:
        if not requests:
            return []
        now = time.time()
        answers: list[Optional[float]] = []
        waiting: list[ScheduledMessage] = []
        with self._db.transaction() as conn:
            starts: dict[str, dict[str, float]] = {}
            for r in requests:
                held = starts.get(r.name)
                if held is None:
                    conn.execute("DELETE FROM yadtq_rate_starts WHERE name = ? AND at <= ?",
                                 (r.name, now - r.period))
                    held = starts[r.name] = dict(conn.execute(
                        "SELECT attempt, at FROM yadtq_rate_starts WHERE name = ?", (r.name,)))
                known = r.attempt in held
                at = admit(held, r.attempt, r.count, r.period, now)
                if not known:
                    conn.execute("INSERT OR REPLACE INTO yadtq_rate_starts (name, attempt, at)"
                                 " VALUES (?, ?, ?)", (r.name, r.attempt, at))
                if at <= now:
                    answers.append(None)
                else:
                    waiting.append(replace(r.waiting, due=at + slack(r.period)))
                    answers.append(at)
            if waiting:
                self._record_in(conn, (), waiting, now)
        return answers
