"""Publishes due countdown, eta and retry messages from the backend's schedule.

Every worker runs one; the backend's ``claim_due`` hands each due message to
exactly one of them under a lease, and the message leaves the schedule only
after the broker confirmed it, so a worker dying mid-move loses nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..exceptions import YADTQError

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: Seconds between looks at the schedule; bounds how late a due task starts.
INTERVAL = 0.1
BATCH = 500
#: Seconds a claimed message stays ours before another worker may publish it.
LEASE = 30.0


class Scheduler:
    def __init__(self, app: YADTQ) -> None:
        self.app = app
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
            entries = self.app.backend.claim_due(None, BATCH, LEASE)
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

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                self.publish_due()
            except YADTQError as exc:
                logger.warning("scheduler: %s", exc)
            except Exception:
                logger.exception("scheduler failed")
