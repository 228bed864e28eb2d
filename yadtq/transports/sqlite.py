"""``sqlite://``: the embedded default transport, a broker and a backend in one file.

Several processes on one machine share the database (worker processes take
messages, client processes publish and wait for results); no server is needed.
``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` name the file;
broker and backend may share it (separate tables, created on first use). The
database runs in WAL mode with ``synchronous=NORMAL``; every write is one
``BEGIN IMMEDIATE`` transaction, which is what makes each step atomic across
processes. Each thread gets its own connection.

Broker. ``yadtq_messages`` holds one row per message. ``visible_after = 0``
means waiting; otherwise the row is leased to the consumer it names until that
time. A consumer claims the oldest visible rows of its queues in one transaction
by leasing them for ``visibility_timeout`` seconds, so a message runs on one
worker at a time. While deliveries are outstanding the consumer renews their
leases on its ``fetch`` calls (at most every third of the timeout); if its
worker dies, the leases run out and the rows are claimed again (at-least-once),
and ``close`` hands leases back at once. ``done`` deletes the rows. An idle
consumer never spins: it sleeps with a backoff (2 ms doubling to 50 ms) and only
queries again when ``PRAGMA data_version`` shows another connection wrote, or
when a lease it saw runs out.

Backend. Each task record is a msgpack blob keyed by task id, with its state,
update time and expiry time as columns; ``records.py`` decides every change.
Expired rows read as absent and are purged in small batches every few seconds.
For the monitor, an index on ``(state, updated)`` lists the tasks processing or
retrying and the latest successes and failures at a cost set by what is listed,
and ``yadtq_totals`` keeps counters of the states entered, updated in the same
transaction as the records.

Waking waiters. ``wait`` binds a Unix datagram socket in a directory beside the
database (``<db>.notify/<pid>-<random>.sock``, or a directory under ``/tmp``
named by a hash of the database path when that would be too long for a socket
address). A writer that commits a change making tasks ready sends their ids
(``*`` for a big batch) to every socket there, and removes sockets nobody
listens on any more (their waiter was killed). The waiter reads the record
before binding, again right after binding (so a change committed in between is
not missed) and whenever a datagram names its task. A lost datagram costs only
latency: the waiter also re-reads every ``wait_recheck`` seconds. Where Unix
sockets are unavailable, ``wait`` polls.

Options (``broker_options`` / ``backend_options``): ``busy_timeout`` (seconds a
connection waits for the write lock, default 30); backend only: ``wait_recheck``
(seconds between fallback re-reads in ``wait``, default 1).

Needs SQLite 3.24 or newer (upsert).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import unquote, urlsplit

from ..envelope import pack, unpack
from ..exceptions import BackendUnavailable, BrokerUnavailable, ConfigurationError, YADTQError
from ..states import FAILED, PROCESSING, READY_STATES, RETRYING, REVOKED, SUCCESS
from .base import (
    RECENT_LIMIT,
    BackendSnapshot,
    Broker,
    Claim,
    Consumer,
    Delivery,
    DrainCallback,
    ErrorInfo,
    Message,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    WorkerFailure,
    WorkerInfo,
)
from .base import REVOKED as DECISION_REVOKED
from .records import (
    DEAD_LETTERED,
    TOTAL_OF_STATE,
    apply_change,
    decide_claim,
    summarize,
    summarize_scheduled,
    totals_from,
)
from .sqlite_notify import Notifier

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

BROKER_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    key BLOB,
    headers BLOB,
    visible_after REAL NOT NULL DEFAULT 0,
    consumer TEXT
);
CREATE INDEX IF NOT EXISTS yadtq_messages_visible ON yadtq_messages (queue, visible_after, id);
CREATE TABLE IF NOT EXISTS yadtq_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    key BLOB,
    headers BLOB,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
"""

BACKEND_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_tasks (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    expires REAL NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS yadtq_tasks_expires ON yadtq_tasks (expires);
CREATE INDEX IF NOT EXISTS yadtq_tasks_state ON yadtq_tasks (state, updated);
CREATE TABLE IF NOT EXISTS yadtq_totals (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS yadtq_revoked (
    task_id TEXT PRIMARY KEY,
    revoked REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS yadtq_schedule (
    task_id TEXT NOT NULL,
    due REAL NOT NULL,
    leased_until REAL NOT NULL DEFAULT 0,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    key BLOB,
    headers BLOB,
    PRIMARY KEY (task_id, due)
);
CREATE INDEX IF NOT EXISTS yadtq_schedule_due ON yadtq_schedule (due);
CREATE TABLE IF NOT EXISTS yadtq_workers (
    worker TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    state TEXT NOT NULL,
    last_heartbeat REAL NOT NULL,
    info BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS yadtq_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT NOT NULL UNIQUE,
    worker TEXT NOT NULL,
    last_heartbeat REAL NOT NULL,
    detected REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS yadtq_dedupe (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS yadtq_dedupe_expires ON yadtq_dedupe (expires);
"""

DEFAULT_BUSY_TIMEOUT = 30.0
#: Backoff of an idle consumer between cheap change checks.
MIN_POLL_DELAY = 0.002
MAX_POLL_DELAY = 0.05
#: Most dead letters kept.
DEAD_LETTER_CAP = 10_000
#: Ids per ``IN (...)`` list (SQLite's variable limit may be as low as 999).
CHUNK = 500
#: Expired rows are purged every this many seconds, at most this many per table per go.
PURGE_INTERVAL = 5.0
PURGE_BATCH = 5_000
#: Waiters re-read the record this often even without a notification.
DEFAULT_WAIT_RECHECK = 1.0


def database_path(url: str) -> str:
    """The absolute file path of a ``sqlite:///path.db`` URL.

    Raises:
        ConfigurationError: not a ``sqlite:`` URL, no path, or an in-memory database
            (which other processes could not share).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URL {url!r} has a host; use sqlite:///relative.db or sqlite:////absolute.db")
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ConfigurationError(f"sqlite URL {url!r} names no database file")
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigurationError("sqlite:///:memory: cannot be shared between processes; "
                                 "use memory:// or a file")
    return os.path.realpath(path)


def _busy_timeout(options: Mapping[str, Any]) -> float:
    try:
        return float(options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"sqlite busy_timeout: {exc}") from None


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class _Database:
    """One SQLite file: a connection per thread, the schema created on first use.

    Every ``sqlite3.Error`` leaves as ``error`` (``BrokerUnavailable`` or
    ``BackendUnavailable``).
    """

    def __init__(self, path: str, schema: str, error: type[YADTQError], busy_timeout: float) -> None:
        self.path = path
        self._schema = schema
        self._error = error
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._pid = os.getpid()

    def _connection(self) -> sqlite3.Connection:
        conn: Optional[sqlite3.Connection] = getattr(self._local, "conn", None)
        if conn is not None and self._pid == os.getpid():
            return conn
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must neither use nor close its parent's connections.
                self._pid = os.getpid()
                self._connections = {}
                self._local = threading.local()
            for thread in [t for t in self._connections if not t.is_alive()]:
                self._connections.pop(thread).close()
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False, cached_statements=256)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections[threading.current_thread()] = conn
        self._local.conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL and creating tables can meet a lock the busy handler does
        # not wait for (e.g. several processes starting at once): retry for a while.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(self._schema)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on exit, rolled back on error."""
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(f"sqlite database {self.path}: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in autocommit mode, for reads."""
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            raise self._error(f"sqlite database {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            connections = list(self._connections.values()) if self._pid == os.getpid() else []
            self._connections = {}
            self._local = threading.local()
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()


def _pack_headers(headers: Mapping[str, bytes]) -> Optional[bytes]:
    return pack(dict(headers)) if headers else None


def _unpack_headers(blob: Optional[bytes]) -> dict[str, bytes]:
    return unpack(blob) if blob else {}  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- broker


_SELECT_EXPIRED = (
    "SELECT id, queue, body, key, headers FROM yadtq_messages"
    " WHERE queue = ? AND visible_after > 0 AND visible_after <= ? ORDER BY id LIMIT ?"
)
_SELECT_WAITING = (
    "SELECT id, queue, body, key, headers FROM yadtq_messages"
    " WHERE queue = ? AND visible_after = 0 ORDER BY id LIMIT ?"
)


class SqliteBroker(Broker):
    """Queues as rows of one table, leased to the consumer that takes them."""

    scheme = "sqlite"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self.path = database_path(url)
        self._db = _Database(self.path, BROKER_SCHEMA, BrokerUnavailable,
                             _busy_timeout(settings.broker_options))

    def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        rows = [(m.queue, m.body, m.key, _pack_headers(m.headers)) for m in messages]
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO yadtq_messages (queue, body, key, headers) VALUES (?, ?, ?, ?)", rows)

    def consumer(self, queues: Sequence[str], *, on_drain: Optional[DrainCallback] = None) -> Consumer:
        # No rebalances here: a consumer keeps its leases until done or closed.
        return SqliteConsumer(self, list(queues))

    def purge(self, queue: str) -> int:
        """Drop the waiting messages of ``queue``; those leased to a consumer stay."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM yadtq_messages WHERE queue = ? AND visible_after <= ?",
                (queue, time.time()))
            return cursor.rowcount

    def depth(self, queue: str) -> Optional[int]:
        """Messages of ``queue`` not yet done, leased ones included (like Kafka's lag)."""
        with self._db.reading() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM yadtq_messages WHERE queue = ?", (queue,)).fetchone()
            return int(count)

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT id, queue, body, key, headers FROM yadtq_dead_letters"
                " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Delivery(body=body, queue=queue, headers=_unpack_headers(headers), key=key,
                         token=row_id) for row_id, queue, body, key, headers in reversed(rows)]

    def peek(self, queue: str) -> Optional[Delivery]:
        """The oldest message of ``queue`` not leased to a consumer (one index lookup)."""
        with self._db.reading() as conn:
            row = conn.execute(_SELECT_WAITING, (queue, 1)).fetchone()
        if row is None:
            return None
        row_id, queue, body, key, headers = row
        return Delivery(body=body, queue=queue, headers=_unpack_headers(headers), key=key, token=row_id)

    def close(self) -> None:
        self._db.close()


class SqliteConsumer(Consumer):
    """Leases rows of its queues; renews the leases of outstanding deliveries."""

    def __init__(self, broker: SqliteBroker, queues: list[str]) -> None:
        self._db = broker._db
        self._queues = queues
        self._visibility = broker.settings.visibility_timeout
        self._name = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._outstanding: dict[int, Delivery] = {}
        self._renewed = time.time()

    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        self._renew_leases()
        if max_items <= 0:
            return []
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = MIN_POLL_DELAY
        version = self._data_version()
        while True:
            visible_at = self._next_visible()
            if visible_at <= time.time():
                taken = self._take(max_items)
                if taken:
                    return taken
            # Nothing visible: sleep until another connection writes or a lease runs out.
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, MAX_POLL_DELAY)
                current = self._data_version()
                if current != version or time.time() >= visible_at:
                    version = current
                    break

    def _data_version(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def _next_visible(self) -> float:
        """When the first message of our queues is (or becomes) visible; ``inf``: none."""
        earliest = float("inf")
        with self._db.reading() as conn:
            for queue in self._queues:
                (first,) = conn.execute(
                    "SELECT MIN(visible_after) FROM yadtq_messages WHERE queue = ?",
                    (queue,)).fetchone()
                if first is not None and first < earliest:
                    earliest = first
        return earliest

    def _take(self, max_items: int) -> list[Delivery]:
        """Lease the oldest visible messages in one transaction: each goes to one consumer."""
        now = time.time()
        with self._db.transaction() as conn:
            rows: list[tuple[int, str, bytes, Optional[bytes], Optional[bytes]]] = []
            for queue in self._queues:
                rows += conn.execute(_SELECT_EXPIRED, (queue, now, max_items)).fetchall()
                rows += conn.execute(_SELECT_WAITING, (queue, max_items)).fetchall()
            if not rows:
                return []
            rows.sort(key=lambda row: row[0])
            del rows[max_items:]
            lease = now + self._visibility
            conn.executemany(
                "UPDATE yadtq_messages SET visible_after = ?, consumer = ? WHERE id = ?",
                [(lease, self._name, row[0]) for row in rows])
        taken = [Delivery(body=body, queue=queue, headers=_unpack_headers(headers), key=key,
                          token=row_id) for row_id, queue, body, key, headers in rows]
        with self._lock:
            for delivery in taken:
                self._outstanding[delivery.token] = delivery
        return taken

    def _renew_leases(self) -> None:
        """Keep outstanding deliveries leased while this consumer lives."""
        now = time.time()
        if now - self._renewed < self._visibility / 3:
            return
        self._renewed = now
        with self._lock:
            ids = list(self._outstanding)
        if not ids:
            return
        lease = now + self._visibility
        with self._db.transaction() as conn:
            cursor = conn.executemany(
                "UPDATE yadtq_messages SET visible_after = ? WHERE id = ? AND consumer = ?",
                [(lease, row_id, self._name) for row_id in ids])
            renewed = cursor.rowcount
        if 0 <= renewed < len(ids):
            logger.warning("%d of %d sqlite leases ran out before renewal; those messages may "
                           "be delivered again", len(ids) - renewed, len(ids))

    def done(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM yadtq_messages WHERE id = ?",
                             [(d.token,) for d in deliveries])
        with self._lock:
            for delivery in deliveries:
                self._outstanding.pop(delivery.token, None)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO yadtq_dead_letters (queue, body, key, headers, reason, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (delivery.queue, delivery.body, delivery.key, _pack_headers(delivery.headers),
                 reason, time.time()))
            conn.execute("DELETE FROM yadtq_messages WHERE id = ?", (delivery.token,))
            conn.execute(
                "DELETE FROM yadtq_dead_letters"
                " WHERE id <= (SELECT MAX(id) FROM yadtq_dead_letters) - ?", (DEAD_LETTER_CAP,))
        with self._lock:
            self._outstanding.pop(delivery.token, None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def close(self) -> None:
        """Hand back the leases of unfinished deliveries, so another worker takes them now."""
        with self._lock:
            ids = list(self._outstanding)
            self._outstanding.clear()
        if not ids:
            return
        try:
            with self._db.transaction() as conn:
                conn.executemany(
                    "UPDATE yadtq_messages SET visible_after = 0, consumer = NULL"
                    " WHERE id = ? AND consumer = ?", [(row_id, self._name) for row_id in ids])
        except BrokerUnavailable as exc:
            logger.warning("could not hand back %d sqlite leases (they run out in %.0f s): %s",
                           len(ids), self._visibility, exc)


# --------------------------------------------------------------------------- backend


def _pack_record(record: TaskRecord) -> bytes:
    error = record.error
    return pack([
        record.state, record.name, record.queue, record.result,
        None if error is None else [error.type, error.message, error.args, error.traceback],
        record.retries, record.worker, record.eta, record.instance,
        [list(entry) for entry in record.history],
    ])


def _unpack_record(task_id: str, blob: bytes) -> TaskRecord:
    state, name, queue, result, error, retries, worker, eta, instance, history = unpack(blob)
    return TaskRecord(
        task_id=task_id, state=state, name=name, queue=queue, result=result,
        error=None if error is None else ErrorInfo(*error), retries=retries, worker=worker,
        eta=eta, instance=instance,
        history=tuple((entry[0], entry[1], entry[2]) for entry in history),
    )


_WORKER_FIELDS = frozenset(f.name for f in fields(WorkerInfo))


def _unpack_worker(blob: bytes) -> WorkerInfo:
    values = {k: v for k, v in unpack(blob).items() if k in _WORKER_FIELDS}
    values["queues"] = tuple(values.get("queues", ()))
    return WorkerInfo(**values)


_ADD_TOTAL = (
    "INSERT INTO yadtq_totals (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
# ``+expires`` keeps the planner on the state index (the expires index would scan everything).
_SELECT_IN_STATE = (
    "SELECT task_id, record FROM yadtq_tasks WHERE state = ? AND +expires >= ?"
    " ORDER BY updated {order} LIMIT ?"
)

_UPSERT_TASK = (
    "INSERT INTO yadtq_tasks (task_id, state, updated, expires, record) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, updated = excluded.updated,"
    " expires = excluded.expires, record = excluded.record"
)


class SqliteBackend(ResultBackend):
    """Task records, schedule, heartbeats and dedupe keys in tables of one file."""

    scheme = "sqlite"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self.path = database_path(url)
        options = settings.backend_options
        self._db = _Database(self.path, BACKEND_SCHEMA, BackendUnavailable,
                             _busy_timeout(options))
        self._notifier = Notifier(self.path)
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
            for table in ("yadtq_tasks", "yadtq_dedupe", "yadtq_revoked"):
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
        ready: list[str] = []
        with self._db.transaction() as conn:
            if scheduled:
                conn.executemany(
                    "INSERT OR REPLACE INTO yadtq_schedule"
                    " (task_id, due, leased_until, queue, body, key, headers)"
                    " VALUES (?, ?, 0, ?, ?, ?, ?)",
                    [(e.task_id, e.due, e.message.queue, e.message.body, e.message.key,
                      _pack_headers(e.message.headers)) for e in scheduled])
            if changes:
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
                ready = [r.task_id for r in changed.values() if r.state in READY_STATES]
        self._notifier.notify(ready)
        try:
            self._purge_expired(now)
        except BackendUnavailable as exc:  # the changes are stored; purging can wait
            logger.warning("could not purge expired sqlite rows: %s", exc)

    def claim(self, claims: Sequence[Claim], alive_after: float) -> list[str]:
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
            alive: Optional[set[str]] = None

            def instance_alive(instance: str) -> bool:
                nonlocal alive
                if alive is None:
                    alive = {row[0] for row in conn.execute(
                        "SELECT instance FROM yadtq_workers"
                        " WHERE state = 'running' AND last_heartbeat >= ?", (alive_after,))}
                return instance in alive

            changed: dict[str, TaskRecord] = {}
            for claim in claims:
                decision, record = decide_claim(
                    records.get(claim.task_id), claim, revoked=claim.task_id in revoked,
                    instance_alive=instance_alive)
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
        listener = self._notifier.listen()
        key = task_id.encode()
        poll = MIN_POLL_DELAY * 5
        try:
            while True:
                record = self._ready(task_id)  # first pass: the re-read after binding
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
        finally:
            if listener is not None:
                listener.close()

    def forget(self, task_ids: Sequence[str]) -> None:
        if not task_ids:
            return
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM yadtq_tasks WHERE task_id = ?",
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

    # -- schedule
    def claim_due(self, now: float, limit: int, lease: float) -> list[ScheduledMessage]:
        """Lease up to ``limit`` due messages in one transaction: each goes to one caller,
        and one not released within ``lease`` seconds is handed out again."""
        if limit <= 0:
            return []
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

    # -- workers
    def heartbeat(self, info: WorkerInfo) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO yadtq_workers (worker, instance, state, last_heartbeat,"
                " info) VALUES (?, ?, ?, ?, ?)",
                (info.worker, info.instance, info.state, info.last_heartbeat, pack(asdict(info))))

    def workers(self) -> list[WorkerInfo]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT info FROM yadtq_workers ORDER BY worker").fetchall()
        return [_unpack_worker(row[0]) for row in rows]

    def record_failure(self, failure: WorkerFailure) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO yadtq_failures (instance, worker, last_heartbeat, detected)"
                " VALUES (?, ?, ?, ?)",
                (failure.instance, failure.worker, failure.last_heartbeat, failure.detected))
            conn.execute(
                "DELETE FROM yadtq_failures WHERE id NOT IN"
                " (SELECT id FROM yadtq_failures ORDER BY id DESC LIMIT ?)",
                (self.settings.failure_history,))

    def failures(self, limit: int = 100) -> list[WorkerFailure]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT worker, instance, last_heartbeat, detected FROM yadtq_failures"
                " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [WorkerFailure(worker=w, instance=i, last_heartbeat=hb, detected=d)
                for w, i, hb, d in rows]

    # -- monitoring
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

    def close(self) -> None:
        self._db.close()
        self._notifier.close()
