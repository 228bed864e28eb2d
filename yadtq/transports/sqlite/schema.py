"""The SQLite transport's schema, connections and shared helpers."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlsplit

from ...envelope import pack, unpack
from ...exceptions import ConfigurationError, YADTQError
from ...namespace import Naming
from .checkpoint import COMMIT_CHECKPOINT_PAGES, Checkpointer, checkpointer, release
from .write_lock import begin_immediate

logger = logging.getLogger(__name__)

BROKER_SCHEMA = """
CREATE TABLE IF NOT EXISTS yadtq_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    key BLOB,
    headers BLOB,
    visible_after REAL NOT NULL DEFAULT 0,
    consumer TEXT,
    priority INTEGER NOT NULL DEFAULT 0
);
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
CREATE INDEX IF NOT EXISTS yadtq_workers_seen ON yadtq_workers (last_heartbeat);
CREATE INDEX IF NOT EXISTS yadtq_workers_running ON yadtq_workers (state, last_heartbeat);
CREATE TABLE IF NOT EXISTS yadtq_watch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    since REAL NOT NULL,
    last REAL NOT NULL
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
CREATE TABLE IF NOT EXISTS yadtq_failed_messages (
    task_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    failed REAL NOT NULL,
    expires REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS yadtq_failed_messages_failed ON yadtq_failed_messages (failed);
CREATE TABLE IF NOT EXISTS yadtq_control (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    worker TEXT NOT NULL,
    command BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS yadtq_control_worker ON yadtq_control (worker, id);
CREATE TABLE IF NOT EXISTS yadtq_progress (
    task_id TEXT PRIMARY KEY,
    retries INTEGER NOT NULL,
    state TEXT NOT NULL,
    meta BLOB,
    updated REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS yadtq_progress_expires ON yadtq_progress (expires);
"""

#: The broker's index: each queue's visible messages, highest priority first, then oldest.
_MESSAGES_INDEX = ("CREATE INDEX IF NOT EXISTS yadtq_messages_priority"
                   " ON yadtq_messages (queue, visible_after, priority DESC, id)")


def upgrade_broker(conn: sqlite3.Connection) -> None:
    """Bring a broker database up to date: the ``priority`` column (databases made before
    priorities lack it; their messages are at the default level) and its index, which
    replaces the earlier ``(queue, visible_after, id)`` one. Safe when several processes
    open the file at once: the check and the change are one transaction."""
    if not _has_column(conn, "yadtq_messages", "priority"):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not _has_column(conn, "yadtq_messages", "priority"):
                conn.execute("ALTER TABLE yadtq_messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
                logger.info("sqlite broker database upgraded: added the priority column")
            conn.execute("DROP INDEX IF EXISTS yadtq_messages_visible")
            conn.execute(_MESSAGES_INDEX)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    else:
        conn.execute(_MESSAGES_INDEX)


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


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


class _NamespacedConnection(sqlite3.Connection):
    """A connection that runs SQL written with the default namespace's table names
    (``yadtq_<table>``) on another namespace's tables (``namespace.py``)."""

    naming: Naming = Naming()

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return super().execute(self.naming.sqlite_rename(sql), parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return super().executemany(self.naming.sqlite_rename(sql), parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        return super().executescript(self.naming.sqlite_rename(script))


class _Database:
    """One SQLite file: a connection per thread, the schema created on first use.

    The SQL of the transport names tables as the default namespace does; for another
    namespace every connection renames them (:class:`_NamespacedConnection`), so two
    apps with different namespaces share one file and never one table.

    Every ``sqlite3.Error`` leaves as ``error`` (``BrokerUnavailable`` or
    ``BackendUnavailable``).
    """

    def __init__(self, path: str, schema: str, error: type[YADTQError], busy_timeout: float,
                 naming: Naming, upgrade: Optional[Callable[[sqlite3.Connection], None]] = None) -> None:
        self.path = path
        self.naming = naming
        self._schema = schema
        #: Brings a database file made by an earlier version up to date (after ``schema``).
        self._upgrade = upgrade
        self._error = error
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._local = threading.local()
        #: Per thread, its connection and (``True``) its prompt one, if made.
        self._connections: dict[tuple[threading.Thread, bool], sqlite3.Connection] = {}
        self._pid = os.getpid()
        #: Checkpoints the log after writes (``checkpoint.py``), taken at the first write
        #: of the process that holds it.
        self._checkpoints: Optional[tuple[int, Checkpointer]] = None

    def _written(self) -> None:
        """After a commit: ``_pid`` is this process's, checked by ``_connection`` just before."""
        taken = self._checkpoints
        if taken is None or taken[0] != self._pid:
            with self._lock:
                taken = self._checkpoints
                if taken is None or taken[0] != self._pid:
                    taken = self._checkpoints = (self._pid, checkpointer(self.path, self._busy_timeout))
        taken[1].written()

    def _connection(self, prompt: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``prompt``: its second one, on which a held lock is
        refused at once rather than waited for (``write_lock.py``)."""
        conn: Optional[sqlite3.Connection] = getattr(self._local, "sender" if prompt else "conn", None)
        if conn is not None and self._pid == os.getpid():
            return conn
        return self._connect(prompt)

    def _connect(self, prompt: bool) -> sqlite3.Connection:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must neither use nor close its parent's connections.
                self._pid = os.getpid()
                self._connections = {}
                self._local = threading.local()
            for owner in [o for o in self._connections if not o[0].is_alive()]:
                self._connections.pop(owner).close()
        timeout = 0.0 if prompt else self._busy_timeout
        if self.naming.is_default:
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                   check_same_thread=False, cached_statements=256)
        else:
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                   check_same_thread=False, cached_statements=256,
                                   factory=_NamespacedConnection)
            conn.naming = self.naming
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections[(threading.current_thread(), prompt)] = conn
        setattr(self._local, "sender" if prompt else "conn", conn)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL and creating tables can meet a lock the busy handler does
        # not wait for (e.g. several processes starting at once): retry for a while.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA wal_autocheckpoint={COMMIT_CHECKPOINT_PAGES}")  # see checkpoint.py
                conn.executescript(self._schema)
                if self._upgrade is not None:
                    self._upgrade(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def transaction(self, prompt: bool = False) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on exit, rolled back on error.

        ``prompt``: a send its caller waits on, on the thread's second connection; a held
        write lock is asked for again in short steps rather than SQLite's growing sleeps
        (``write_lock.py``)."""
        try:
            conn = self._connection(prompt)
            if prompt:
                begin_immediate(conn, self._busy_timeout)
            else:
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            self._written()
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
            taken, self._checkpoints = self._checkpoints, None
        if taken is not None and taken[0] == os.getpid():
            release(taken[1])
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()


def _pack_headers(headers: Mapping[str, bytes]) -> Optional[bytes]:
    return pack(dict(headers)) if headers else None


def _unpack_headers(blob: Optional[bytes]) -> dict[str, bytes]:
    return unpack(blob) if blob else {}  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- broker


