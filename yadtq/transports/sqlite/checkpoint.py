"""Checkpointing a SQLite file's write-ahead log in the background, off the commit path.

In WAL mode a commit appends to ``<db>-wal`` and does not sync (``synchronous=NORMAL``);
a checkpoint copies the log back into the database and syncs the file. By default
SQLite runs it inside the commit that takes the log past 1,000 pages: every few
hundred tasks (each small write transaction adds about three 4 KB pages) one
``delay``, claim or outcome copies the lot and waits for the disk.

So each process that writes also checkpoints in a thread of its own, a moment after
its writes (:data:`CHECKPOINT_DELAY`: a busy process checkpoints a few times a
second, not per commit), with ``PASSIVE`` checkpoints: they copy what no reader still
needs and never wait for a reader or writer. A commit still checkpoints once the log
passes :data:`COMMIT_CHECKPOINT_PAGES`: by then the background has copied nearly all
of it, so that commit only finishes the copy, and the log starts over from its
beginning (SQLite restarts a log only at a write that follows a complete checkpoint;
background checkpoints alone, racing the writers, would let it grow without bound).
Measured with 2 workers and 400 sequential round trips on one file: p99 17-25 ms
before, 10-12 ms with this (docs/performance-history.md).

A process that writes nothing starts no thread, and an idle one sleeps until its
next write. The broker and the backend of one file share one checkpointer per
process (:func:`checkpointer`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import suppress
from typing import Optional

logger = logging.getLogger(__name__)

#: Seconds between a write and the checkpoint that follows it (writes meanwhile join it).
CHECKPOINT_DELAY = 0.2
#: Log pages past which a commit checkpoints (``wal_autocheckpoint``; SQLite's default is
#: 1,000): about 40 MB of log at most.
COMMIT_CHECKPOINT_PAGES = 10_000


class Checkpointer:
    """The background checkpoints of one database file in this process."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        #: A write came since the last checkpoint began: set without a lock on every
        #: commit (only the first after a checkpoint goes further), cleared by the thread.
        self._pending = False

    def written(self) -> None:
        """Note a committed write: a checkpoint follows within :data:`CHECKPOINT_DELAY`."""
        if self._pending:
            return
        self._pending = True
        with self._lock:
            if self._thread is None:
                self._stop = threading.Event()
                thread = threading.Thread(target=self._run, args=(self._stop,),
                                          name="yadtq-sqlite-checkpoint", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # no thread to be had (interpreter exiting, limits)
                    logger.debug("sqlite: no background checkpoints for %s: %s", self.path, exc)
                    self._pending = False  # commits checkpoint past the backstop meanwhile
                    return
                self._thread = thread
        self._wake.set()

    def _run(self, stop: threading.Event) -> None:
        conn: Optional[sqlite3.Connection] = None
        try:
            while True:
                self._wake.wait()
                if stop.wait(CHECKPOINT_DELAY):
                    return
                self._wake.clear()
                self._pending = False
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                               isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next write tries again; commits are the backstop
                    logger.debug("sqlite: background checkpoint of %s failed: %s", self.path, exc)
        finally:
            if conn is not None:
                with suppress(sqlite3.Error):
                    conn.close()

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (a checkpoint under way finishes first, within ``timeout``); the
        next write starts another."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._pending = False
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


#: This process's checkpointers, by database path, with how many open databases use each.
_shared: dict[str, tuple[Checkpointer, int]] = {}
_shared_lock = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child has none of its parent's threads, and a lock held by one of them
    at the fork would stay held: it starts with no checkpointers."""
    global _shared_lock
    _shared_lock = threading.Lock()
    _shared.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def checkpointer(path: str, busy_timeout: float) -> Checkpointer:
    """The checkpointer of ``path`` in this process; give it back with :func:`release`."""
    with _shared_lock:
        found, users = _shared.get(path, (None, 0))
        if found is None:
            found = Checkpointer(path, busy_timeout)
        _shared[path] = (found, users + 1)
        return found


def release(taken: Checkpointer) -> None:
    """Give back a checkpointer from :func:`checkpointer`; the last user stops its thread."""
    with _shared_lock:
        found, users = _shared.get(taken.path, (None, 0))
        if found is not taken:
            return  # taken before a fork, or released already
        if users > 1:
            _shared[taken.path] = (found, users - 1)
            return
        del _shared[taken.path]
    taken.stop()
