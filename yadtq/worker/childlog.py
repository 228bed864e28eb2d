"""Log records of process-pool children, handed to the worker's own logging.

A child started by forkserver has no logging set up at all, and a forked one
writes through copies of the parent's handlers: either way what a child logs (a
hook that raised, a soft limit reached) could miss the worker's log or its
format. Each child instead puts its records on one queue shared with the pool
(:func:`log_to_parent`, at the child's start), and a :class:`LogRelay` thread of
the worker hands them to the worker's loggers, so they land where ``yadtq
worker -l/--logfile/--log-format`` sends every other line.
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import queue
import threading
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds the relay blocks on the queue before looking whether it must stop.
RELAY_POLL = 0.5


class _ToParent(logging.handlers.QueueHandler):
    """Sends a record as plain data: the message formatted, the traceback as text."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # the worker is gone or the record cannot be pickled: nothing to tell


def log_to_parent(records: Any, level: int) -> None:
    """In a pool child: send every record at ``level`` and above to the worker (``records``
    is the pool's queue), instead of any handler the child has or inherited."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_ToParent(records))
    root.setLevel(level)


class LogRelay:
    """The worker's end: a queue children put records on, and a loop handing them on."""

    def __init__(self, context: Any) -> None:
        self.records = context.Queue()
        #: The level children log at: the worker's own.
        self.level = logging.getLogger().getEffectiveLevel()
        self._stop = threading.Event()

    def run(self) -> None:
        """Hand records to the worker's loggers until :meth:`stop`, then what is left."""
        while True:
            try:
                record = self.records.get(timeout=0 if self._stop.is_set() else RELAY_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            except (EOFError, OSError):
                return
            except Exception:  # a record that cannot be unpickled here: skip it
                logger.debug("unreadable log record from a pool child", exc_info=True)
                continue
            logging.getLogger(record.name).handle(record)

    def stop(self) -> None:
        self._stop.set()
