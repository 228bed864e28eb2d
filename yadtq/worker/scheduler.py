"""Publishes due countdown, eta and retry messages from the backend's schedule.

Every worker runs one; the backend's ``claim_due`` hands each due message to
exactly one of them under a lease, and the message leaves the schedule only
after the broker confirmed it, so a worker dying mid-move loses nothing.

It looks every ``INTERVAL`` while messages are due soon or its worker retried a
task since the last look, and otherwise sleeps until the earliest scheduled
message is due, at most ``IDLE_INTERVAL``: an idle worker costs two backend
round trips a second, not ten. A message scheduled by another process while the
scheduler sleeps, due sooner than that, starts at most ``IDLE_INTERVAL`` late.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

from ..exceptions import YADTQError

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: Seconds between looks at the schedule while it is busy; bounds how late a due task starts.
INTERVAL = 0.1
#: Longest sleep while nothing is due soon (bounds the lateness of a message scheduled
#: meanwhile by another process, e.g. a client's short countdown).
IDLE_INTERVAL = 1.0
BATCH = 500
#: Seconds a claimed message stays ours before another worker may publish it.
LEASE = 30.0


class Scheduler:
    """Moves due messages from the schedule to their queues, in a thread of its own.

    Args:
        app: the app whose backend and broker it uses.
        activity: a counter that changes when this worker scheduled something (its
            retries); a change makes the next look come after ``INTERVAL``.
    """

    def __init__(self, app: YADTQ, activity: Optional[Callable[[], int]] = None) -> None:
        self.app = app
        self._activity = activity or (lambda: 0)
        self._mark = self._activity()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yadtq-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def publish_due(self) -> int:
        """Move every due message to its queue; how many were moved."""
        moved = 0
        while True:
            entries = self.app.backend.claim_due(time.time(), BATCH, LEASE)
            if not entries:
                return moved
            self.app.broker.publish([e.message for e in entries])
            pending = self.app.broker.flush(LEASE / 2)
            if pending:
                logger.warning("%d scheduled messages not confirmed by the broker; "
                               "they stay scheduled and will be published again", pending)
                return moved
            self.app.backend.release_due(entries)
            moved += len(entries)
            logger.debug("published %d due messages", len(entries))
            if len(entries) < BATCH:
                return moved

    def next_wait(self) -> float:
        """Seconds until the next look: ``INTERVAL`` while busy, else until the earliest
        scheduled message is due, at most ``IDLE_INTERVAL``."""
        mark = self._activity()
        if mark != self._mark:
            self._mark = mark
            return INTERVAL
        due = self.app.backend.next_due()
        if due is None:
            return IDLE_INTERVAL
        return min(IDLE_INTERVAL, max(INTERVAL, due - time.time()))

    def _run(self) -> None:
        wait = INTERVAL
        while not self._stop.wait(wait):
            wait = INTERVAL
            try:
                if not self.publish_due():
                    wait = self.next_wait()
            except YADTQError as exc:
                logger.warning("scheduler: %s", exc)
            except Exception:
                logger.exception("scheduler failed")
