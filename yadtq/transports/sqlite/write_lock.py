"""Taking SQLite's write lock (``BEGIN IMMEDIATE``) promptly, for a send its caller waits on.

Every write of the transport is a ``BEGIN IMMEDIATE`` transaction, and a database has
one write lock, which clients, workers and their threads take in turn, each for about a
tenth of a millisecond. When it is held, SQLite's busy handler (``sqliteDefaultBusyCallback``)
sleeps 1 ms, then 2, 5, 10, 15, 20, 25 ms between tries: ten or a hundred times longer
than the holder keeps it. Measured on the end-to-end workload of the side-by-side
benchmark (a client sending one task at a time while two workers run, two cores), 18 %
of the workers' write transactions waited more than 0.5 ms, the 99th percentile 34 ms.

A client's send is one short insert that ``.delay()`` returns after: each of those
sleeps is time the caller loses. Sends go through a second connection of the thread,
opened without SQLite's handler (``timeout=0``), and :func:`begin_immediate` asks for
the lock again after 50 us, doubling to at most 2 ms, until the busy timeout has passed
(toggling ``PRAGMA busy_timeout`` on the one connection instead cost 10 us a send). Workers
keep SQLite's handler: their writes are batches, and a batch that waits grows (the
next fetch takes what came meanwhile); asked for in short steps, the workers switched
threads three times as often and spent 1.5-2x the CPU per task (``benchmarks/end_to_end.py``).
Every other statement runs on the thread's first connection, with SQLite's handler (a
read meets a lock only in rare moments: a log recovery, the last connection closing).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Optional

#: Seconds before the second try at a held write lock; each wait doubles, up to ``RETRY_MAX``.
FIRST_RETRY = 0.00005
RETRY_MAX = 0.002
#: SQLite's primary result code for a lock held by another connection.
SQLITE_BUSY = 5


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused for a lock another connection holds (``SQLITE_BUSY``)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return int(code) & 0xFF == SQLITE_BUSY
    return "database is locked" in str(exc)


def begin_immediate(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE`` on ``conn`` (opened with ``timeout=0``: SQLite's handler never
    sleeps on it), trying again in short steps while another connection holds the write
    lock, for at most ``busy_timeout`` seconds.

    Raises:
        sqlite3.OperationalError: still locked then, or any other refusal.
    """
    deadline: Optional[float] = None
    pause = FIRST_RETRY
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + busy_timeout
            elif now >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, RETRY_MAX)
