"""The backend's clock, as this process estimates it.

Absolute times that other machines compare (a task's eta and expiry, when a
retry is due) are taken on the backend's clock, never on the clock of the host
that happens to compute them: a client or worker whose clock is off by 30 s
then neither runs tasks early or late nor expires them wrongly. The estimate is
this host's clock plus an offset measured with ``ResultBackend.time()`` (Redis
``TIME``) about once a minute; backends that live on this host (memory, SQLite)
share its clock and cost nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from .exceptions import YADTQError
from .transports.base import ResultBackend

logger = logging.getLogger(__name__)

#: Seconds between measurements of the offset (clocks drift slowly).
REFRESH = 60.0
#: Seconds before trying again after the backend could not be asked.
RETRY = 5.0


class BackendClock:
    """``now()`` on the backend's clock: this host's clock plus a measured offset."""

    def __init__(self, backend: ResultBackend) -> None:
        self.backend = backend
        self._local = type(backend).time is ResultBackend.time
        self._offset = 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds the backend's clock is ahead of this host's (last measured)."""
        return self._offset

    def now(self) -> float:
        """The backend's clock now, as far as this process knows it."""
        if not self._local and time.monotonic() >= self._next and self._lock.acquire(blocking=False):
            try:
                self._measure()
            finally:
                self._lock.release()
        return time.time() + self._offset

    def _measure(self) -> None:
        try:
            before = time.time()
            remote = self.backend.time()
            after = time.time()
        except YADTQError as exc:
            logger.debug("cannot read the backend's clock (%s); keeping offset %.3f s", exc,
                         self._offset)
            self._next = time.monotonic() + RETRY
            return
        offset = remote - (before + after) / 2
        if abs(offset - self._offset) > 1.0:
            logger.info("this host's clock is %.1f s %s the backend's", abs(offset),
                        "behind" if offset > 0 else "ahead of")
        self._offset = offset
        self._next = time.monotonic() + REFRESH
