"""The SQLite backend's concurrency slots (``ConcurrencyBackend`` in slots_store.py).

Tables: ``yadtq_slot_keys`` (one row per limit key: task name, key value, limit,
when last swept), ``yadtq_slot_holders`` (key, attempt -> acquirer instance, since)
and ``yadtq_slot_waiting`` (the waiting attempts of a key in arrival order, each
with its message). Each step is one write transaction deciding with the reference
functions of slots_store.py; a waiting message promoted into a freed slot is
written into the schedule in that same transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Callable, Optional

from ..slots_store import (
    SWEEP_BATCH,
    ConcurrencyBackend,
    SlotHolder,
    SlotKeyInfo,
    SlotRequest,
    attempt_name,
    attempt_over,
    holder_live,
    split_attempt,
)
from ..types import Message, ScheduledMessage, StateChange, TaskRecord
from .schema import _pack_headers, _unpack_headers

if TYPE_CHECKING:
    from ...settings import Settings
    from .schema import _Database

SLOTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_slot_keys (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    lim INTEGER NOT NULL,
    swept REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS yadtq_slot_holders (
    key TEXT NOT NULL,
    attempt TEXT NOT NULL,
    instance TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (key, attempt)
);
CREATE TABLE IF NOT EXISTS yadtq_slot_waiting (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    attempt TEXT NOT NULL,
    task_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    mkey BLOB,
    headers BLOB,
    UNIQUE (key, attempt)
);
CREATE INDEX IF NOT EXISTS yadtq_slot_waiting_key ON yadtq_slot_waiting (key, seq);
"""


class SqliteSlots(ConcurrencyBackend):
    """Mixed into ``SqliteBackend``; uses its database, records, liveness and schedule."""

    _db: _Database
    settings: Settings

    def _load(self, conn: sqlite3.Connection, task_ids: Collection[str],
              now: float) -> dict[str, TaskRecord]:
        raise NotImplementedError

    def _record_in(self, conn: sqlite3.Connection, changes: Sequence[StateChange],
                   scheduled: Sequence[ScheduledMessage], now: float) -> list[str]:
        raise NotImplementedError

    def _alive_in(self, conn: sqlite3.Connection, now: float) -> Callable[[str], bool]:
        raise NotImplementedError

    def _record_of(self, conn: sqlite3.Connection, now: float) -> Callable[[str], Optional[TaskRecord]]:
        return lambda task_id: self._load(conn, [task_id], now).get(task_id)

    def _settle(self, conn: sqlite3.Connection, key: str, limit: int, now: float,
                alive: Callable[[str], bool]) -> tuple[int, list[ScheduledMessage]]:
        """``slots_store.settle`` on ``key``: (holders left, messages promoted)."""
        record = self._record_of(conn, now)
        held = 0
        for attempt, instance, since in conn.execute(
                "SELECT attempt, instance, since FROM yadtq_slot_holders WHERE key = ?", (key,)).fetchall():
            if holder_live(attempt, (instance, since), record(split_attempt(attempt)[0]), alive, now):
                held += 1
            else:
                conn.execute("DELETE FROM yadtq_slot_holders WHERE key = ? AND attempt = ?",
                             (key, attempt))
        promoted: list[ScheduledMessage] = []
        while held < limit:
            row = conn.execute("SELECT seq, attempt, task_id, queue, body, mkey, headers"
                               " FROM yadtq_slot_waiting WHERE key = ? ORDER BY seq LIMIT 1",
                               (key,)).fetchone()
            if row is None:
                break
            seq, attempt, task_id, queue, body, mkey, headers = row
            conn.execute("DELETE FROM yadtq_slot_waiting WHERE seq = ?", (seq,))
            if attempt_over(record(task_id), split_attempt(attempt)[1]):
                continue
            conn.execute("INSERT OR REPLACE INTO yadtq_slot_holders (key, attempt, instance, since)"
                         " VALUES (?, ?, '', ?)", (key, attempt, now))
            held += 1
            promoted.append(ScheduledMessage(task_id, now, Message(
                queue, body, mkey, _unpack_headers(headers))))
        return held, promoted

    def acquire_slots(self, requests: Sequence[SlotRequest]) -> tuple[list[bool], int]:
        if not requests:
            return [], 0
        now = time.time()
        answers: list[bool] = []
        promoted: list[ScheduledMessage] = []
        with self._db.transaction() as conn:
            alive = self._alive_in(conn, now)
            for r in requests:
                conn.execute("INSERT INTO yadtq_slot_keys (key, name, value, lim) VALUES (?, ?, ?, ?)"
                             " ON CONFLICT (key) DO UPDATE SET lim = excluded.lim",
                             (r.key, r.name, r.value, r.limit))
                attempt = r.attempt
                if conn.execute("UPDATE yadtq_slot_holders SET instance = ?, since = ?"
                                " WHERE key = ? AND attempt = ?",
                                (r.instance, now, r.key, attempt)).rowcount:
                    answers.append(True)
                    continue
                if conn.execute("SELECT 1 FROM yadtq_slot_waiting WHERE key = ? AND attempt = ?",
                                (r.key, attempt)).fetchone():
                    answers.append(False)
                    continue
                (held,) = conn.execute("SELECT COUNT(*) FROM yadtq_slot_holders WHERE key = ?",
                                       (r.key,)).fetchone()
                if held >= r.limit or self._has_waiting(conn, r.key):
                    held, moved = self._settle(conn, r.key, r.limit, now, alive)
                    promoted += moved
                if held < r.limit:
                    conn.execute("INSERT INTO yadtq_slot_holders (key, attempt, instance, since)"
                                 " VALUES (?, ?, ?, ?)", (r.key, attempt, r.instance, now))
                    answers.append(True)
                    continue
                m = r.waiting.message
                conn.execute("INSERT INTO yadtq_slot_waiting (key, attempt, task_id, queue, body, mkey,"
                             " headers) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (r.key, attempt, r.task_id, m.queue, m.body, m.key,
                              _pack_headers(m.headers)))
                answers.append(False)
            if promoted:
                self._record_in(conn, (), promoted, now)
        return answers, len(promoted)

    def release_slots(self, slots: Sequence[tuple[str, str, int]]) -> int:
        if not slots:
            return 0
        now = time.time()
        promoted: list[ScheduledMessage] = []
        with self._db.transaction() as conn:
            alive = self._alive_in(conn, now)
            for key, task_id, retries in slots:
                conn.execute("DELETE FROM yadtq_slot_holders WHERE key = ? AND attempt = ?",
                             (key, attempt_name(task_id, retries)))
                promoted += self._settle_key(conn, key, now, alive)
            if promoted:
                self._record_in(conn, (), promoted, now)
        return len(promoted)

    def _settle_key(self, conn: sqlite3.Connection, key: str, now: float,
                    alive: Callable[[str], bool]) -> list[ScheduledMessage]:
        """Settle ``key`` with its stored limit; forget the key once nothing holds or waits."""
        row = conn.execute("SELECT lim FROM yadtq_slot_keys WHERE key = ?", (key,)).fetchone()
        if row is None:
            return []
        promoted: list[ScheduledMessage] = []
        if self._has_waiting(conn, key):
            promoted = self._settle(conn, key, int(row[0]), now, alive)[1]
        if not self._has_waiting(conn, key) and not conn.execute(
                "SELECT 1 FROM yadtq_slot_holders WHERE key = ? LIMIT 1", (key,)).fetchone():
            conn.execute("DELETE FROM yadtq_slot_keys WHERE key = ?", (key,))
        return promoted

    @staticmethod
    def _has_waiting(conn: sqlite3.Connection, key: str) -> bool:
        return conn.execute("SELECT 1 FROM yadtq_slot_waiting WHERE key = ? LIMIT 1",
                            (key,)).fetchone() is not None

    def sweep_slots(self) -> int:
        now = time.time()
        promoted: list[ScheduledMessage] = []
        with self._db.transaction() as conn:
            alive = self._alive_in(conn, now)
            keys = [k for (k,) in conn.execute(
                "SELECT key FROM yadtq_slot_keys WHERE key IN (SELECT key FROM yadtq_slot_waiting)"
                " ORDER BY swept LIMIT ?", (SWEEP_BATCH,)).fetchall()]
            for key in keys:
                conn.execute("UPDATE yadtq_slot_keys SET swept = ? WHERE key = ?", (now, key))
                promoted += self._settle_key(conn, key, now, alive)
            if promoted:
                self._record_in(conn, (), promoted, now)
        return len(promoted)

    def concurrency_slots(self, limit: int = 100) -> list[SlotKeyInfo]:
        with self._db.transaction() as conn:
            found = []
            for key, name, value, lim in conn.execute(
                    "SELECT key, name, value, lim FROM yadtq_slot_keys ORDER BY key").fetchall():
                holders = tuple(
                    SlotHolder(*split_attempt(attempt), instance, since)
                    for attempt, instance, since in conn.execute(
                        "SELECT attempt, instance, since FROM yadtq_slot_holders WHERE key = ?"
                        " ORDER BY since", (key,)))
                waiting = tuple(t for (t,) in conn.execute(
                    "SELECT task_id FROM yadtq_slot_waiting WHERE key = ? ORDER BY seq LIMIT ?",
                    (key, max(limit, 0))))
                (count,) = conn.execute("SELECT COUNT(*) FROM yadtq_slot_waiting WHERE key = ?",
                                        (key,)).fetchone()
                if holders or count:
                    found.append(SlotKeyInfo(name, value, int(lim), holders, waiting, int(count)))
        return found
