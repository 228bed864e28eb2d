"""The SQLite transport checkpoints its write-ahead log in a background thread per
process and file (transports/sqlite/checkpoint.py), not in the commits."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path

from yadtq.transports.sqlite import checkpoint
from yadtq.transports.sqlite.checkpoint import Checkpointer, checkpointer, release

THREAD = "yadtq-sqlite-checkpoint"


def _threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == THREAD and t.is_alive())


def _database_file_rows(path: Path) -> int:
    """Rows of table ``t`` in the database file itself, the log ignored (``immutable``)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.OperationalError:  # the table is still only in the log
        return 0
    finally:
        conn.close()


def test_writes_reach_the_database_file_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # commits never checkpoint here
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    background = Checkpointer(str(path), busy_timeout=5.0)
    try:
        assert _database_file_rows(path) == 0  # all in the log so far
        background.written()
        deadline = time.monotonic() + 10
        while _database_file_rows(path) < 100:
            assert time.monotonic() < deadline, "no background checkpoint within 10 s"
            time.sleep(checkpoint.CHECKPOINT_DELAY / 4)
    finally:
        background.stop()
        conn.close()


def test_one_thread_per_file_only_while_used_and_only_after_a_write(tmp_path: Path) -> None:
    before = _threads()
    path = str(tmp_path / "db.sqlite")
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchall()
    broker, backend = checkpointer(path, 5.0), checkpointer(path, 5.0)
    assert broker is backend and _threads() == before  # shared; nothing written yet
    broker.written()
    backend.written()
    assert _threads() == before + 1
    release(broker)
    assert _threads() == before + 1  # the backend still uses it
    release(backend)
    assert _threads() == before
    again = checkpointer(path, 5.0)
    assert again is not broker  # a new one after the last release
    release(again)


def test_a_forked_child_checkpoints_with_a_thread_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    parents = checkpointer(str(path), 5.0)
    parents.written()  # the parent's thread runs
    with warnings.catch_warnings():  # Python 3.12+ warns of fork() with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: a checkpointer of its own, whose thread gets the rows through
        code = 1
        try:
            child = sqlite3.connect(path, isolation_level=None)
            child.execute("PRAGMA wal_autocheckpoint=0")
            child.execute("CREATE TABLE t (x)")
            child.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
            own = checkpointer(str(path), 5.0)
            own.written()
            deadline = time.monotonic() + 10
            while _database_file_rows(path) < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            code = 0 if own is not parents and _database_file_rows(path) == 10 else 2
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release(parents)
        conn.close()
