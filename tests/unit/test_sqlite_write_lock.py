"""The SQLite write lock taken in short steps (``transports/sqlite/write_lock.py``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from yadtq.transports.sqlite.write_lock import begin_immediate, is_busy


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "lock.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.close()
    yield path


def connect(path: str, timeout: float = 5.0) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=timeout, check_same_thread=False)


def test_waits_for_the_holder(db: str) -> None:
    holder, waiter = connect(db), connect(db, timeout=0.0)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    order: list[str] = []

    def release_soon() -> None:
        threading.Event().wait(0.05)
        order.append("released")
        holder.execute("COMMIT")

    releaser = threading.Thread(target=release_soon)
    releaser.start()
    begin_immediate(waiter, 5.0)
    order.append("taken")
    waiter.execute("INSERT INTO t VALUES (2)")
    waiter.execute("COMMIT")
    releaser.join(5)
    assert order == ["released", "taken"]
    assert waiter.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2


def test_gives_up_after_the_busy_timeout(db: str) -> None:
    holder, waiter = connect(db), connect(db, timeout=0.0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            begin_immediate(waiter, 0.1)
        assert is_busy(raised.value)
        assert not waiter.in_transaction
    finally:
        holder.execute("ROLLBACK")


def test_other_refusals_are_raised_at_once(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "other.db"), timeout=0.0)
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError) as raised:  # a transaction within a transaction
        begin_immediate(conn, 5.0)
    assert not is_busy(raised.value)


def test_a_send_waits_for_a_held_lock_and_lands(tmp_path: Path) -> None:
    from yadtq.settings import Settings
    from yadtq.transports.sqlite import SqliteBroker
    from yadtq.transports.types import Message

    path = tmp_path / "send.db"
    broker = SqliteBroker(f"sqlite:///{path}", Settings())
    try:
        broker.publish([Message("q", b"first", b"k", {})])  # makes the file and its tables
        holder = connect(str(path))
        holder.execute("BEGIN IMMEDIATE")
        releaser = threading.Timer(0.05, lambda: holder.execute("COMMIT"))
        releaser.start()
        broker.publish([Message("q", b"second", b"k", {})])
        releaser.join(5)
        assert broker.depth("q") == 2
    finally:
        broker.close()
