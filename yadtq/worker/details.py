"""Saving the calls of the attempts a worker starts, for people (the dashboard's task page).

The consumer hands over the envelopes it starts; a background thread saves their
bounded calls (``transports/details_store.py``) in one backend step per interval,
so the consumer loop never waits for it. Best effort: a failed save is logged and
dropped, and a worker that stops may leave the calls of its last few starts
unsaved. Nothing is kept when the backend has no task details.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ..exceptions import YADTQError
from ..transports.details_store import DetailsBackend, call_of

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..envelope import Envelope

logger = logging.getLogger(__name__)

#: Seconds between two saves.
SAVE_INTERVAL = 0.25
#: Most calls saved in one step (more wait for the next).
SAVE_BATCH = 1000
#: Most calls waiting to be saved; older ones are dropped past it (a backend too slow).
PENDING_LIMIT = 100_000


class CallRecorder:
    """Saves started tasks' calls in the background, batched."""

    def __init__(self, app: YADTQ) -> None:
        self.app = app
        self._pending: deque[Envelope] = deque(maxlen=PENDING_LIMIT)
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._enabled: Optional[bool] = None

    def started(self, envelopes: Sequence[Envelope]) -> None:
        """Queue the calls of attempts just started (cheap: the work is done later)."""
        if self._enabled is None:
            self._enabled = isinstance(self.app.backend, DetailsBackend)
        if not self._enabled or not envelopes:
            return
        self._pending.extend(envelopes)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="yadtq-details", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(SAVE_INTERVAL)
            while self._pending:
                self.flush()

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
            backend.save_calls([call_of(e) for e in batch])
        except YADTQError as exc:
            logger.debug("calls of %d started tasks not saved: %s", len(batch), exc)
        except Exception:  # never let it die: the dashboard would go stale silently
            logger.exception("calls of %d started tasks not saved", len(batch))
        return len(batch)
