"""Heartbeats: a worker's liveness and counters, and noticing workers that died."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable

from ..exceptions import YADTQError
from ..transports.base import WorkerFailure, WorkerInfo

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

RUNNING, STOPPED = "running", "stopped"


class Heartbeat:
    """Writes this worker's :class:`WorkerInfo` every ``heartbeat_interval`` seconds.

    A worker whose consume loop has not turned for twice the interval reports
    itself unhealthy while its process lives. Each beat also records, once,
    any other worker silent for ``worker_unresponsive_after`` seconds in the
    failure history.
    """

    def __init__(self, app: YADTQ, report: Callable[[], WorkerInfo]) -> None:
        self.app = app
        self.report = report
        self.interval = app.settings.heartbeat_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yadtq-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def beat(self) -> None:
        self.app.backend.heartbeat(self.report())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                self.notice_failures()
            except YADTQError as exc:
                logger.warning("heartbeat failed: %s", exc)
            except Exception:
                logger.exception("heartbeat failed")

    def notice_failures(self) -> None:
        now = time.time()
        silent_after = self.app.settings.worker_unresponsive_after
        for info in self.app.backend.workers():
            if info.state == RUNNING and now - info.last_heartbeat > silent_after:
                logger.warning("worker %s is unresponsive (last heartbeat %.0f s ago)",
                               info.worker, now - info.last_heartbeat)
                self.app.backend.record_failure(
                    WorkerFailure(info.worker, info.instance, info.last_heartbeat, now))


def default_worker_name() -> str:
    """``hostname.pid``."""
    return f"{socket.gethostname()}.{os.getpid()}"
