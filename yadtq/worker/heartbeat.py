"""Heartbeats: a worker's liveness and counters, and noticing workers that died."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Optional

from ..exceptions import YADTQError
from ..transports.base import WorkerFailure, WorkerInfo
from .links import Link

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

class Heartbeat:
    """Writes this worker's :class:`WorkerInfo` every ``heartbeat_interval`` seconds.

    A worker whose consume loop has not turned for twice the interval reports
    itself unhealthy while its process lives. Each beat also records, once,
    any other worker silent for ``worker_unresponsive_after`` seconds in the
    failure history (the backend's failure history keeps one entry per instance,
    whichever worker noticed it).
    """

    def __init__(self, app: YADTQ, report: Callable[[], WorkerInfo], link: Optional[Link] = None) -> None:
        self.app = app
        self.report = report
        self.link = link
        self.interval = app.settings.heartbeat_interval
        self._noticed: set[str] = set()
        #: Called in turn after each beat and look for dead workers (the concurrency
        #: sweep, handing memory back once the worker is quiet).
        self.after_beat: list[Callable[[], None]] = []
        self._missed = False
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
        """Send one heartbeat. The first that succeeds after a failed one says so
        (``resumed``): the backend then knows an outage ended and gives every worker a
        full ``worker_unresponsive_after`` to be heard again before judging it dead."""
        try:
            self.app.backend.heartbeat(replace(self.report(), resumed=self._missed))
        except YADTQError as exc:
            self._missed = True
            if self.link is not None:
                self.link.failed(exc)
            raise
        self._missed = False
        if self.link is not None:
            self.link.ok()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                self.notice_failures()
                for after in self.after_beat:
                    after()
            except YADTQError as exc:
                logger.debug("heartbeat failed: %s", exc)
            except Exception:
                logger.exception("heartbeat failed")

    def notice_failures(self) -> None:
        """Record, once per instance, every running worker the backend has not heard from
        for ``worker_unresponsive_after`` seconds. Silences are the backend's
        (:attr:`WorkerInfo.silent`, on its own clock, outages left out), so neither this
        host's clock nor a backend that was just down makes a live worker look dead."""
        for info in self.app.backend.silent_workers(self.app.settings.worker_unresponsive_after):
            if info.instance not in self._noticed:
                self._noticed.add(info.instance)
                logger.error("worker %s failed: unresponsive (last heartbeat %.0f s ago)",
                             info.worker, info.silent)
                self.app.backend.record_failure(WorkerFailure(
                    info.worker, info.instance, info.last_heartbeat, self.app.backend.time()))


def default_worker_name() -> str:
    """``hostname.pid``."""
    return f"{socket.gethostname()}.{os.getpid()}"
