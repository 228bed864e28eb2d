"""The periodic ticker: every worker runs one, inside its scheduler loop.

Each look asks the backend for the schedules due on the backend's clock; for each,
the worker plans the tick (``periodic.plan``: on time, or missed and caught up
once or skipped), builds the tick's message under a task id derived from the
schedule's name and tick time, and claims it with ``advance_periodic``: the
backend moves ``next_run`` on and puts the message into the schedule of delayed
messages in one atomic step, only if ``next_run`` was still the one planned. So
however many workers look at once, one wins each tick; the message is published
by the scheduler like any due countdown task, and a worker dying between any two
steps loses no tick and enqueues none twice.

At start (and until it succeeds) the ticker saves the app's declared schedules
(idempotent: a changed spec replaces the stored one; a schedule no longer
declared is left alone until ``yadtq schedule remove``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Optional

from ..envelope import Envelope, encode
from ..exceptions import ConfigurationError, SerializationError
from ..periodic import Schedule, plan, tick_id
from ..transports.base import Message, ScheduledMessage
from ..transports.periodic_store import PeriodicEntry, PeriodicStore, periodic_store

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: Seconds between looks at the periodic schedules (bounds how late a tick is enqueued).
LOOK_INTERVAL = 0.25
#: Seconds between looks while the app declares no schedule but the backend holds some
#: (added with ``yadtq schedule add``): the scheduler's idle pace.
STORED_LOOK_INTERVAL = 1.0


def tick_message(app: YADTQ, schedule: Schedule, run_at: float, now: float) -> ScheduledMessage:
    """The message of ``schedule``'s tick at ``run_at``, due at once.

    Raises:
        SerializationError: the schedule's arguments cannot be carried.
    """
    task = app.tasks.get(schedule.task)
    opts = task.options if task is not None else None
    queue = schedule.queue or (opts.queue if opts and opts.queue else app.settings.default_queue)
    expires = now + opts.expires if opts is not None and opts.expires is not None else None
    envelope = Envelope(id=tick_id(schedule.name, run_at), task=schedule.task, args=schedule.args,
                        kwargs=dict(schedule.kwargs), queue=queue, eta=None, expires=expires,
                        key=None, created=now,
                        options={"priority": opts.priority} if opts is not None and opts.priority else {})
    body = encode(envelope, app.settings.secret_key)
    message = Message(queue=queue, body=body, key=envelope.routing_key(), headers=envelope.headers())
    return ScheduledMessage(envelope.id, run_at, message)


def register(app: YADTQ, store: PeriodicStore) -> int:
    """Save the app's declared schedules in the backend; how many were new or changed."""
    changed = 0
    now = app.now()
    for schedule in app.periodic_schedules.values():
        if store.save_periodic(schedule.name, schedule.encode(), schedule.next_after(now)):
            logger.info("periodic schedule %s saved (%s, task %s)", schedule.name,
                        schedule.describe(), schedule.task)
            changed += 1
    return changed


class Ticker:
    """Claims due periodic ticks for one worker; :meth:`turn` is called by the scheduler loop."""

    def __init__(self, app: YADTQ) -> None:
        self.app = app
        self._registered = False
        self._next_look = 0.0
        #: Schedules whose stored spec is unreadable, logged once each.
        self._broken: set[str] = set()
        #: Whether the last look found a schedule not paused in the backend.
        self._stored = False

    def wait_hint(self) -> float:
        """Longest the scheduler loop should sleep before the next look: ``LOOK_INTERVAL``
        when the app declares schedules (so a tick starts promptly); else
        ``STORED_LOOK_INTERVAL`` while the backend holds schedules (added with ``yadtq
        schedule add``: claimed at most about a second late), and no limit while it
        holds none (saving or resuming one wakes the scheduler where the backend pushes
        wake-ups; elsewhere the scheduler's idle pace finds it)."""
        if self.app.periodic_schedules:
            return LOOK_INTERVAL
        return STORED_LOOK_INTERVAL if self._stored else float("inf")

    def turn(self) -> int:
        """Look at the periodic schedules if it is time to; how many ticks this worker
        claimed. Backend errors propagate (the scheduler loop logs them once per outage)."""
        if time.monotonic() < self._next_look:
            return 0
        self._next_look = time.monotonic() + LOOK_INTERVAL
        try:
            store = periodic_store(self.app.backend)
        except ConfigurationError:
            return 0  # a backend without periodic schedules: nothing to tick
        if not self._registered:
            register(self.app, store)
            self._registered = True
        if self.app.periodic_schedules:
            due = store.due_periodic(None)
        else:
            # The app declares none: the listing says whether any is stored at all (then
            # the scheduler may sleep long); the due ones are claimed from it as usual
            # (advance_periodic checks the due time again, on the backend's clock).
            stored = [entry for entry in store.periodic_entries() if not entry.paused]
            self._stored = bool(stored)
            now = self.app.now()
            due = sorted((entry for entry in stored if entry.next_run <= now), key=lambda e: e.next_run)
        return sum(self._fire(store, entry) for entry in due)

    def _fire(self, store: PeriodicStore, entry: PeriodicEntry) -> int:
        try:
            schedule = Schedule.decode(entry.name, entry.spec)
        except ConfigurationError as exc:
            if entry.name not in self._broken:
                self._broken.add(entry.name)
                logger.error("periodic schedule %s skipped: %s", entry.name, exc)
            return 0
        now = self.app.now()
        tick = plan(schedule, entry.next_run, now)
        message: Optional[ScheduledMessage] = None
        if tick.run_at is not None:
            try:
                message = tick_message(self.app, schedule, tick.run_at, now)
            except SerializationError as exc:
                logger.error("periodic schedule %s: tick at %.3f not enqueued: %s", entry.name,
                             tick.run_at, exc)
        if not store.advance_periodic(entry.name, entry.next_run, tick.next_run, message):
            return 0  # another worker claimed it (or it was paused, changed, removed)
        if tick.missed:
            logger.warning("periodic schedule %s missed its tick at %.3f (no worker ran): %s",
                           entry.name, entry.next_run,
                           "running it once now" if message is not None else "skipped (catch_up=none)")
        if message is not None:
            logger.debug("periodic schedule %s: tick %s enqueued", entry.name, message.task_id,
                         extra={"task_id": message.task_id})
            return 1
        return 0
