"""What a running task can do about itself: report progress, and see that it was revoked.

Used by :meth:`Task.update_state`, :meth:`Task.progress` and :meth:`Task.is_revoked`
in whatever process runs the task. Progress goes to the backend from one thread per
process, at most once per :data:`PROGRESS_INTERVAL` per task (the latest update wins),
so a task that reports 10,000 times a second costs the backend one write a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Optional

from .exceptions import YADTQError

if TYPE_CHECKING:
    from .app import YADTQ
    from .transports.base import Progress

logger = logging.getLogger(__name__)

#: Seconds between two progress writes of one task.
PROGRESS_INTERVAL = 1.0
#: How long the sender sleeps when nothing is pending.
IDLE_WAIT = 1.0


class ProgressSender:
    """Keeps the latest update of each task and writes the due ones in batches."""

    def __init__(self, interval: float = PROGRESS_INTERVAL) -> None:
        self.interval = interval
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[YADTQ, Progress]] = {}
        self._sent: dict[str, float] = {}
        self._write_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._pid = 0

    def report(self, app: YADTQ, update: Progress) -> None:
        """Queue ``update``; it is written when its task's interval allows."""
        with self._cond:
            self._pending[update.task_id] = (app, update)
            self._ensure_thread()
            self._cond.notify()

    def finished(self, task_id: str) -> None:
        """The attempt ended: what it still had pending is written now, in the caller,
        before its outcome is stored (so ``meta`` then shows its last report).

        A task that never reported (most) is looked up without a lock: ``_due`` marks an
        update sent before it takes it from ``_pending``, so one being written is seen
        in either (looked up in this order)."""
        if task_id not in self._pending and task_id not in self._sent:
            return
        with self._write_lock:  # after any older update of it being written: never overwritten
            with self._cond:
                self._sent.pop(task_id, None)
                pending = self._pending.pop(task_id, None)
            if pending is not None:
                app, update = pending
                try:
                    app.backend.record_progress([update])
                except YADTQError as exc:
                    logger.warning("storing the last progress of task %s failed: %s", task_id, exc,
                                   extra={"task_id": task_id})

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self._pid = os.getpid()  # a forked child needs a thread of its own
            self._thread = threading.Thread(target=self._run, name="yadtq-progress", daemon=True)
            self._thread.start()

    def _due(self) -> tuple[dict[int, tuple[YADTQ, list[Progress]]], float]:
        """Updates due now, grouped by app; and how long until the next one is."""
        now = time.monotonic()
        batches: dict[int, tuple[YADTQ, list[Progress]]] = {}
        wait = IDLE_WAIT
        for task_id, (app, update) in list(self._pending.items()):
            ready_at = self._sent.get(task_id, 0.0) + self.interval
            if ready_at <= now:
                self._sent[task_id] = now  # before it leaves _pending: see finished()
                del self._pending[task_id]
                batches.setdefault(id(app), (app, []))[1].append(update)
            else:
                wait = min(wait, ready_at - now)
        return batches, wait

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(IDLE_WAIT)
                    continue
            with self._write_lock:  # taking and writing in one go: see finished()
                with self._cond:
                    batches, wait = self._due()
                for app, updates in batches.values():
                    try:
                        app.backend.record_progress(updates)
                    except YADTQError as exc:
                        logger.warning("storing the progress of %d tasks failed: %s", len(updates), exc)
            if not batches:
                with self._cond:
                    self._cond.wait(wait)


class Revocations:
    """Ids of tasks running in this process that were revoked with ``terminate=True``."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, task_id: str) -> None:
        with self._lock:
            self._ids.add(task_id)

    def discard(self, task_id: str) -> None:
        with self._lock:
            self._ids.discard(task_id)

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            return task_id in self._ids


#: One per process.
progress_sender = ProgressSender()
revocations = Revocations()
