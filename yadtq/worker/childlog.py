"""Log records of process-pool children, handed to the worker's own logging.

A child started by forkserver has no logging set up at all, and a forked one
writes through copies of the parent's handlers: either way what a child logs (a
hook that raised, a soft limit reached) could miss the worker's log or its
format. Each child instead sends its records on a pipe of its own to the pool
(:func:`log_to_parent`, at the child's start), and a :class:`LogRelay` thread of
the worker hands them to the worker's loggers, so they land where ``yadtq
worker -l/--logfile/--log-format`` sends every other line.
"""

from __future__ import annotations

import copy
import logging
import threading
from multiprocessing.connection import Connection, wait
from typing import Any, cast

logger = logging.getLogger(__name__)

#: Seconds the relay waits on the pipes before looking for new ones and whether to stop.
RELAY_POLL = 0.5


class _ToParent(logging.Handler):
    """Sends each record, as plain data (the message formatted, the traceback as text),
    on the child's own pipe to the worker: no lock shared between children, so a child
    killed in the middle of a record (its time limit) leaves the others' logs alone."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        try:
            with self.lock:  # type: ignore[union-attr]  # one record at a time on the pipe
                self.conn.send(record)
        except Exception:  # the worker is gone, or the record does not pickle: nothing to tell
            pass


def log_to_parent(conn: Connection, level: int) -> None:
    """In a pool child: send every record at ``level`` and above to the worker on ``conn``,
    instead of any handler the child has or inherited."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_ToParent(conn))
    root.setLevel(level)


class LogRelay:
    """The worker's end: one pipe per child, and a loop handing their records on."""

    def __init__(self, context: Any) -> None:
        self._context = context
        #: The level children log at: the worker's own.
        self.level = logging.getLogger().getEffectiveLevel()
        self._conns: list[Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def pipe(self) -> Connection:
        """A new child's end of a pipe whose records this relay hands on (the caller passes
        it to the child and closes its own copy once the child started)."""
        reader, writer = self._context.Pipe(duplex=False)
        with self._lock:
            self._conns.append(reader)
        return cast(Connection, writer)

    def run(self) -> None:
        """Hand records to the worker's loggers until :meth:`stop`, then what is left."""
        while True:
            stopping = self._stop.is_set()
            with self._lock:
                conns = list(self._conns)
            for conn in wait(conns, timeout=0 if stopping else RELAY_POLL) if conns else ():
                self._relay(cast(Connection, conn))
            if stopping:
                return
            if not conns:
                self._stop.wait(RELAY_POLL)

    def _relay(self, conn: Connection) -> None:
        try:
            record = conn.recv()
        except Exception:  # the child is gone (or died mid-record): done with its pipe
            with self._lock:
                self._conns.remove(conn)
            conn.close()
            return
        if isinstance(record, logging.LogRecord):
            logging.getLogger(record.name).handle(record)

    def stop(self) -> None:
        self._stop.set()
