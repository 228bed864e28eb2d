"""``SqliteBackend``: task records, schedule, heartbeats and dedupe keys in tables of one file.

This module holds the records (state changes, claims, waiting, progress) and dedupe
keys; each other capability is a mixin of its own module: ``schedule.py``,
``workers.py``, ``monitor.py``, ``operations.py``, ``periodic.py``, ``canvas.py``,
``limits.py``, ``slots.py`` and ``details.py``; ``codec.py`` packs the stored blobs.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Optional

from ...exceptions import BackendUnavailable, ConfigurationError
from ...namespace import Naming
from ...states import FAILED, PROCESSING, READY_STATES, REVOKED
from ..base import REVOKED as DECISION_REVOKED
from ..base import (
    Claim,
    Progress,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
)
from ..records import (
    DEAD_LETTERED,
    TOTAL_OF_STATE,
    apply_change,
    decide_claim,
)
from .canvas import CANVAS_SCHEMA, CANVAS_TABLES, SqliteCanvas
from .codec import _pack_record, _unpack_record
from .details import DETAILS_SCHEMA, DETAILS_TABLES, SqliteDetails
from .limits import LIMITS_SCHEMA, SqliteLimits
from .monitor import SqliteMonitor
from .notify import Notifier
from .operations import SqliteOperations
from .periodic import PERIODIC_SCHEMA, SqlitePeriodic
from .schedule import SqliteSchedule
from .schema import (
    BACKEND_SCHEMA,
    DEFAULT_WAIT_RECHECK,
    MIN_POLL_DELAY,
    PURGE_BATCH,
    PURGE_INTERVAL,
    _busy_timeout,
    _chunks,
    _Database,
    _marks,
    _pack_headers,
    database_path,
)
from .slots import SLOTS_SCHEMA, SqliteSlots
from .workers import SqliteWorkers

if TYPE_CHECKING:
    from ...settings import Settings

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- backend


_ADD_TOTAL = (
    "INSERT INTO yadtq_totals (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
_UPSERT_TASK = (
    "INSERT INTO yadtq_tasks (task_id, state, updated, expires, record) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, updated = excluded.updated,"
    " expires = excluded.expires, record = excluded.record"
)


class SqliteBackend(SqliteWorkers, SqliteSchedule, SqliteMonitor, SqliteOperations, SqlitePeriodic,
                    SqliteCanvas, SqliteLimits, SqliteSlots, SqliteDetails, ResultBackend):
    """Task records, schedule, heartbeats and dedupe keys in tables of one file."""

    scheme = "sqlite"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self.path = database_path(url)
        options = settings.backend_options
        naming = Naming.of(settings)
        self._db = _Database(self.path, BACKEND_SCHEMA + CANVAS_SCHEMA + PERIODIC_SCHEMA + LIMITS_SCHEMA
                             + SLOTS_SCHEMA + DETAILS_SCHEMA,
                             BackendUnavailable,
                             _busy_timeout(options), naming)
        self._notifier = Notifier(self.path if naming.is_default else f"{self.path}-{naming.namespace}")
        try:
            self._recheck = float(options.get("wait_recheck", DEFAULT_WAIT_RECHECK))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"sqlite wait_recheck: {exc}") from None
        self._next_purge = 0.0

    @property
    def notify_directory(self) -> str:
        """Where waiters bind their notification sockets."""
        return self._notifier.directory

    # -- helpers
    def _load(self, conn: sqlite3.Connection, task_ids: Collection[str],
              now: float) -> dict[str, TaskRecord]:
        """The unexpired records among ``task_ids``."""
        found: dict[str, TaskRecord] = {}
        for chunk in _chunks(list(task_ids)):
            cursor = conn.execute(
                f"SELECT task_id, expires, record FROM yadtq_tasks"
                f" WHERE task_id IN ({_marks(len(chunk))})", chunk)
            for task_id, expires, blob in cursor:
                if expires >= now:
                    found[task_id] = _unpack_record(task_id, blob)
        return found

    def _store(self, conn: sqlite3.Connection, records: Iterable[TaskRecord], now: float) -> None:
        expires = now + self.settings.result_expires
        conn.executemany(_UPSERT_TASK, [
            (r.task_id, r.state, r.updated, expires, _pack_record(r)) for r in records])

    @staticmethod
    def _add_totals(conn: sqlite3.Connection, totals: Counter[str]) -> None:
        """Add to the counters, in the caller's transaction (so they match the records)."""
        if totals:
            conn.executemany(_ADD_TOTAL, [(name, n) for name, n in totals.items() if n])

    def _purge_expired(self, now: float) -> None:
        """Delete a bounded batch of expired rows every few seconds (sooner when behind)."""
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        behind = False
        with self._db.transaction() as conn:
            for table in ("yadtq_tasks", "yadtq_dedupe", "yadtq_revoked", "yadtq_progress",
                          *CANVAS_TABLES, *DETAILS_TABLES):
                cursor = conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN"
                    f" (SELECT rowid FROM {table} WHERE expires < ? LIMIT ?)", (now, PURGE_BATCH))
                behind = behind or cursor.rowcount >= PURGE_BATCH
        if behind:
            self._next_purge = now

    # -- states and results
    def record(self, changes: Sequence[StateChange],
               scheduled: Sequence[ScheduledMessage] = ()) -> None:
        """Store changes and schedule messages in one transaction, then wake waiters."""
        now = time.time()
        with self._db.transaction() as conn:
            ready = self._record_in(conn, changes, scheduled, now)
        self._after_record(ready, now)

    def _record_in(self, conn: sqlite3.Connection, changes: Sequence[StateChange],
                   scheduled: Sequence[ScheduledMessage], now: float) -> list[str]:
        """``record`` inside the caller's transaction; returns the ids made ready."""
        if scheduled:
            conn.executemany(
                "INSERT OR REPLACE INTO yadtq_schedule"
                " (task_id, due, leased_until, queue, body, key, headers)"
                " VALUES (?, ?, 0, ?, ?, ?, ?)",
                [(e.task_id, e.due, e.message.queue, e.message.body, e.message.key,
                  _pack_headers(e.message.headers)) for e in scheduled])
        if not changes:
            return []
        records = self._load(conn, {c.task_id for c in changes}, now)
        changed: dict[str, TaskRecord] = {}
        totals: Counter[str] = Counter()
        for change in changes:
            if change.dead_lettered:
                totals[DEAD_LETTERED] += 1
            updated = apply_change(records.get(change.task_id), change)
            if updated is not None:
                records[change.task_id] = changed[change.task_id] = updated
                if updated.state in TOTAL_OF_STATE:
                    totals[TOTAL_OF_STATE[updated.state]] += 1
        self._store(conn, changed.values(), now)
        self._add_totals(conn, totals)
        return [r.task_id for r in changed.values() if r.state in READY_STATES]

    def _after_record(self, ready: list[str], now: float) -> None:
        """Wake the waiters of tasks made ready, and purge expired rows now and then."""
        self._notifier.notify(ready)
        try:
            self._purge_expired(now)
        except BackendUnavailable as exc:  # the changes are stored; purging can wait
            logger.warning("could not purge expired sqlite rows: %s", exc)

    def claim(self, claims: Sequence[Claim], alive_after: Optional[float] = None) -> list[str]:
        """Decide each claim inside one ``BEGIN IMMEDIATE`` transaction: atomic across
        processes, so a redelivered task runs at most once while its worker lives."""
        if not claims:
            return []
        now = time.time()
        decisions: list[str] = []
        ready: list[str] = []
        ids = list({c.task_id for c in claims})
        with self._db.transaction() as conn:
            records = self._load(conn, ids, now)
            revoked: set[str] = set()
            for chunk in _chunks(ids):
                revoked.update(row[0] for row in conn.execute(
                    f"SELECT task_id FROM yadtq_revoked WHERE expires >= ?"
                    f" AND task_id IN ({_marks(len(chunk))})", (now, *chunk)))
            alive = self._alive_in(conn, now)
            changed: dict[str, TaskRecord] = {}
            for claim in claims:
                decision, record = decide_claim(
                    records.get(claim.task_id), claim, revoked=claim.task_id in revoked,
                    instance_alive=alive)
                if record is not None:
                    records[claim.task_id] = changed[claim.task_id] = record
                if decision == DECISION_REVOKED:
                    ready.append(claim.task_id)
                decisions.append(decision)
            self._store(conn, changed.values(), now)
            self._add_totals(conn, Counter({TOTAL_OF_STATE[REVOKED]: len(ready)}))
        self._notifier.notify(ready)
        return decisions

    def get(self, task_ids: Sequence[str]) -> list[Optional[TaskRecord]]:
        if not task_ids:
            return []
        with self._db.reading() as conn:
            records = self._load(conn, set(task_ids), time.time())
        return [records.get(t) for t in task_ids]

    def states(self, task_ids: Sequence[str]) -> list[Optional[str]]:
        """The state column alone: no record is unpacked."""
        if not task_ids:
            return []
        now = time.time()
        found: dict[str, str] = {}
        with self._db.reading() as conn:
            for chunk in _chunks(list(set(task_ids))):
                for task_id, state, expires in conn.execute(
                        f"SELECT task_id, state, expires FROM yadtq_tasks"
                        f" WHERE task_id IN ({_marks(len(chunk))})", chunk):
                    if expires >= now:
                        found[task_id] = state
        return [found.get(t) for t in task_ids]

    def _ready(self, task_id: str) -> Optional[TaskRecord]:
        record = self.get([task_id])[0]
        return record if record is not None and record.state in READY_STATES else None

    def wait(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """Block until the task is ready, woken by a datagram from whichever process
        stored it (see the module docstring); ``None`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        record = self._ready(task_id)
        if record is not None or (timeout is not None and timeout <= 0):
            return record
        listener = self._notifier.waiter()  # kept for this thread's next wait
        key = task_id.encode()
        poll = MIN_POLL_DELAY * 5
        while True:
            record = self._ready(task_id)  # first pass: the re-read after listening
            if record is not None:
                return record
            step = self._recheck
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                step = min(step, remaining)
            if listener is not None:
                listener.wait_for(key, step)
            else:
                time.sleep(min(step, poll))
                poll = min(poll * 2, 0.2)

    def forget(self, task_ids: Sequence[str]) -> None:
        if not task_ids:
            return
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM yadtq_tasks WHERE task_id = ?",
                             [(t,) for t in task_ids])
            conn.executemany("DELETE FROM yadtq_progress WHERE task_id = ?",
                             [(t,) for t in task_ids])

    def revoke(self, task_ids: Sequence[str], timestamp: float) -> None:
        """Mark tasks revoked; one not processing is recorded ``revoked`` at once."""
        if not task_ids:
            return
        now = time.time()
        ready: list[str] = []
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO yadtq_revoked (task_id, revoked, expires) VALUES (?, ?, ?)",
                [(t, timestamp, now + self.settings.result_expires) for t in task_ids])
            records = self._load(conn, set(task_ids), now)
            changed: dict[str, TaskRecord] = {}
            for task_id in task_ids:
                current = records.get(task_id)
                if current is not None and current.state == PROCESSING:
                    continue
                updated = apply_change(current, StateChange(task_id, REVOKED, timestamp))
                if updated is not None:
                    records[task_id] = changed[task_id] = updated
            self._store(conn, changed.values(), now)
            self._add_totals(conn, Counter({TOTAL_OF_STATE[REVOKED]: len(changed)}))
            ready = list(changed)
        self._notifier.notify(ready)

    # -- progress of running tasks
    def record_progress(self, updates: Sequence[Progress]) -> None:
        if not updates:
            return
        expires = time.time() + self.settings.result_expires
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO yadtq_progress (task_id, retries, state, meta, updated, expires)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(u.task_id, u.retries, u.state, u.meta, u.timestamp, expires) for u in updates])

    def get_progress(self, task_ids: Sequence[str]) -> list[Optional[Progress]]:
        if not task_ids:
            return []
        now = time.time()
        found: dict[str, Progress] = {}
        with self._db.reading() as conn:
            for chunk in _chunks(list(set(task_ids))):
                cursor = conn.execute(
                    f"SELECT task_id, retries, state, meta, updated FROM yadtq_progress"
                    f" WHERE task_id IN ({_marks(len(chunk))}) AND expires >= ?", (*chunk, now))
                for task_id, retries, state, meta, updated in cursor:
                    found[task_id] = Progress(task_id, retries, state, meta, updated)
        return [found.get(t) for t in task_ids]

    # -- dedupe
    def claim_dedupe(self, key: str, task_id: str, ttl: float) -> str:
        """Atomic across processes (``BEGIN IMMEDIATE``): one id wins per key."""
        now = time.time()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT task_id, expires FROM yadtq_dedupe WHERE key = ?",
                               (key,)).fetchone()
            if row is not None and row[1] >= now:
                earlier: str = row[0]
                record = self._load(conn, [earlier], now).get(earlier)
                if record is None or record.state not in (FAILED, REVOKED):
                    return earlier
            conn.execute("INSERT OR REPLACE INTO yadtq_dedupe (key, task_id, expires)"
                         " VALUES (?, ?, ?)", (key, task_id, now + ttl))
        return task_id

    def release_dedupe(self, key: str, task_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM yadtq_dedupe WHERE key = ? AND task_id = ?", (key, task_id))

    def close(self) -> None:
        self._db.close()
        self._notifier.close()
