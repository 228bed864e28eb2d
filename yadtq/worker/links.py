"""The worker's view of its connections: log a link going down and coming back, once each."""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

logger = logging.getLogger(__name__)


class Link:
    """One connection (``broker`` or ``backend``) and whether its last use worked."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self._down_since: Optional[float] = None
        self._connected = False
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self._down_since is None

    def ok(self) -> None:
        """The link just worked: log ``connected`` the first time, ``restored`` after a loss."""
        with self._lock:
            if not self._connected:
                self._connected = True
                logger.info("connected to %s %s", self.name, self.url)
            if self._down_since is not None:
                logger.warning("%s connection restored after %.1f s", self.name,
                               time.monotonic() - self._down_since)
                self._down_since = None

    def failed(self, error: BaseException) -> None:
        """The link just failed: log ``lost`` once until it works again."""
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                logger.error("%s connection lost: %s", self.name, error)
