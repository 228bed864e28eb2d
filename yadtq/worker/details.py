"""Saving the calls of the attempts a worker starts, for people (the dashboard's task page).

The consumer hands over the envelopes it starts; a background thread saves their
bounded calls (``transports/details_store.py``) in one backend step per interval,
or as soon as :data:`SAVE_SOON` wait, so the consumer loop never waits for it. Best
effort: a failed save is logged and dropped, and a worker that stops may leave the
calls of its last few starts unsaved. Nothing is kept when the backend has no task details.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ..exceptions import YADTQError
from ..transports.details_store import DetailsBackend

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..envelope import Envelope

logger = logging.getLogger(__name__)

#: Seconds between two saves.
SAVE_INTERVAL = 0.25
#: Most calls saved in one step (more wait for the next).
SAVE_BATCH = 1000
#: Calls waiting that wake the thread before its interval is up. A busy worker then
#: saves in steps of about this many instead of holding a quarter second of started
#: envelopes (1,000-1,500 at full speed) and building one large pipeline for them: those
#: peaks left Python's allocator with arenas it could not give back, and an idle worker's
#: resident memory 1.5-2 MB higher after a burst (docs/performance.md).
SAVE_SOON = 256
#: Idle intervals after which the thread ends (the next start brings it back).
IDLE_ROUNDS = 20
#: Most calls waiting to be saved; older ones are dropped past it (a backend too slow).
PENDING_LIMIT = 100_000


class CallRecorder:
    """Saves started tasks' calls in the background, batched, until ``stop`` is set.

    Its thread runs while there is work: it ends after :data:`IDLE_ROUNDS` idle
    intervals (the next start brings it back) and when the worker stops, after a
    last save.
    """

    def __init__(self, app: YADTQ, stop: threading.Event) -> None:
        self.app = app
        self.stop = stop
        self._pending: deque[Envelope] = deque(maxlen=PENDING_LIMIT)
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._enabled: Optional[bool] = None
        #: Set when :data:`SAVE_SOON` calls wait, or by :meth:`wake`.
        self._wake = threading.Event()

    def started(self, envelopes: Sequence[Envelope]) -> None:
        """Queue the calls of attempts just started (cheap: the work is done later)."""
        if not envelopes:
            return
        if self._enabled is None:
            self._enabled = isinstance(self.app.backend, DetailsBackend)
        if not self._enabled:
            return
        self._pending.extend(envelopes)
        if len(self._pending) >= SAVE_SOON and not self._wake.is_set():
            self._wake.set()  # (set() takes a lock: not again while the thread has not woken)
        with self._lock:
            if self._thread is None and not self.stop.is_set():
                self._thread = threading.Thread(target=self._run, name="yadtq-details", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Save what waits now, not at the end of the interval (the worker is stopping:
        the thread then sees ``stop`` and ends after that save)."""
        self._wake.set()

    def _run(self) -> None:
        idle = 0
        while True:
            self._wake.wait(SAVE_INTERVAL)
            self._wake.clear()  # before the save: a call added during it wakes the next round
            stopping = self.stop.is_set()
            if self._pending:
                idle = 0
                while self._pending and self.flush():
                    pass
            else:
                idle += 1
            if stopping or idle >= IDLE_ROUNDS:
                with self._lock:  # started() adds before it looks at the thread: nothing is left
                    if stopping or not self._pending:
                        self._thread = None
                        return

    def flush(self) -> int:
        """Save up to :data:`SAVE_BATCH` waiting calls now; returns how many were taken."""
        batch: list[Envelope] = []
        try:
            while len(batch) < SAVE_BATCH:
                batch.append(self._pending.popleft())
        except IndexError:
            pass
        if not batch:
            return 0
        backend = self.app.backend
        assert isinstance(backend, DetailsBackend)
        try:
            backend.save_started(batch)
        except YADTQError as exc:
            logger.debug("calls of %d started tasks not saved: %s", len(batch), exc)
        except Exception:  # never let it die: the dashboard would go stale silently
            logger.exception("calls of %d started tasks not saved", len(batch))
        return len(batch)
