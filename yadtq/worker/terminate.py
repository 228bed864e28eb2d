"""Stopping running tasks revoked with ``terminate=True``.

``AsyncResult.revoke(terminate=True)`` records the task ``revoked`` in the backend
at once (so its state is ``revoked`` within a second even if no worker answers,
and any outcome its worker stores later is refused: a ready task never changes).
The worker running it learns of it here: a :class:`Terminator` thread reads the
states of the tasks in its pool a few times a second (``ResultBackend.states``: one
cheap call however many run, never whole records) and asks the pool to stop
those now ``revoked``: a process-pool child is killed and replaced, a coroutine is
cancelled, a thread-pool task is told (``self.is_revoked()``, and ``Revoked``
raised by its next ``update_state``/``progress``), since a thread cannot be
stopped from outside.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..exceptions import YADTQError
from ..states import REVOKED

if TYPE_CHECKING:
    from ..app import YADTQ
    from .pools import Pool

logger = logging.getLogger(__name__)

#: Seconds between two looks at the running tasks' states.
POLL_INTERVAL = 0.25
#: Longest wait while no task runs (the pool wakes the terminator when one starts).
IDLE_WAIT = 60.0


class Terminator:
    """Watches the pool's running tasks for ``revoked`` states and stops them."""

    def __init__(self, app: YADTQ, pool: Pool, interval: float = POLL_INTERVAL) -> None:
        self.app = app
        self.pool = pool
        self.interval = interval
        self._stop = threading.Event()
        self._stopped_ids: set[str] = set()

    def stop(self) -> None:
        self._stop.set()
        self.pool.wake_waiters()

    def run(self) -> None:
        """Until :meth:`stop`: one look every ``interval`` while tasks run, none while the
        pool is idle (backend faults are logged)."""
        while not self._stop.is_set():
            self.pool.wait_running(IDLE_WAIT, self._stop)
            if self._stop.wait(self.interval):
                return
            try:
                self.look()
            except YADTQError as exc:
                logger.warning("checking running tasks for revocations failed: %s", exc)

    def look(self) -> int:
        """Stop the running tasks whose state is now ``revoked``; how many were stopped."""
        running = [job.envelope for job in self.pool.active()]
        ids = [envelope.id for envelope in running]
        self._stopped_ids.intersection_update(ids)
        if not ids:
            return 0
        stopped = 0
        for envelope, state in zip(running, self.app.backend.states(ids)):
            if state != REVOKED or envelope.id in self._stopped_ids:
                continue
            self._stopped_ids.add(envelope.id)
            logger.info("task %s[%s] revoked while running: stopping it", envelope.task, envelope.id,
                        extra={"task_id": envelope.id, "task": envelope.task})
            self.pool.terminate(envelope.id)
            stopped += 1
        return stopped
