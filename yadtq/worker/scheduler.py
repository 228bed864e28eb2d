"""Publishes due countdown, eta and retry messages from the backend's schedule.

Every worker runs one; the backend's ``claim_due`` hands each due message to
exactly one of them under a lease, on the backend's clock, and the message
leaves the schedule only after the broker confirmed it, so a worker dying
mid-move loses nothing.

Entries are published one by one, so one the broker refuses for good (over
``message.max.bytes``, a queue name Kafka rejects...) cannot hold back the
others: it is dead-lettered (when the broker can) and its task recorded
``failed`` with the reason, and the rest go out. A copy refused for a passing
reason (the broker unreachable past ``message.timeout.ms``) stays scheduled and
is published again when its lease ends; the app's delivery-error hook does not
fail its task (``StateChange.undelivered``).

It looks every ``INTERVAL`` while messages are due soon or its worker retried a
task since the last look, and otherwise sleeps until the earliest scheduled
message is due, at most ``IDLE_INTERVAL``: an idle worker costs two backend
round trips a second, not ten. A message scheduled by another process while the
scheduler sleeps, due sooner than that, starts at most ``IDLE_INTERVAL`` late.
With a backend that pushes wake-ups (``transports/wakeups.py``: Redis) it is woken
whenever the schedule's earliest entry moves earlier, whoever scheduled it, so it
sleeps up to ``PUSHED_IDLE_INTERVAL`` instead (what that bounds: an entry leased by
a worker that died comes back at most that much after its lease ends).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Optional

from .. import states
from ..exceptions import BrokerUnavailable, ConfigurationError, SerializationError, YADTQError
from ..transports.base import DeliveryErrorHook, ErrorInfo, ScheduledMessage, StateChange

if TYPE_CHECKING:
    from ..app import YADTQ
    from .links import Link
    from .ticker import Ticker

logger = logging.getLogger(__name__)

#: Seconds between looks at the schedule while it is busy; bounds how late a due task starts.
INTERVAL = 0.1
#: Longest sleep while nothing is due soon (bounds the lateness of a message scheduled
#: meanwhile by another process, e.g. a client's short countdown).
IDLE_INTERVAL = 1.0
#: Longest sleep while the backend pushes wake-ups (``Scheduler.pushed``): a fallback look.
PUSHED_IDLE_INTERVAL = 5.0
BATCH = 500
#: Seconds a claimed message stays ours before another worker may publish it.
LEASE = 30.0
#: Broker refusals that no retry can cure: the entry is dead-lettered and its task failed.
#: (librdkafka error names; a transport's other refusals count as passing.)
PERMANENT_REFUSALS = ("MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD",
                      "TOPIC_EXCEPTION", "INVALID_TOPIC", "_INVALID_ARG", "POLICY_VIOLATION",
                      "TOPIC_AUTHORIZATION_FAILED", "INVALID_REQUIRED_ACKS")


def permanent(error: str) -> bool:
    """Whether a broker's refusal ``error`` is for good (see ``PERMANENT_REFUSALS``)."""
    return any(code in error for code in PERMANENT_REFUSALS)


class Scheduler:
    """The publishing thread of one worker.

    Args:
        app: the app whose schedule and broker are used.
        link: the worker's backend link, told of failures and recoveries (so an outage
            is logged once, not on every look at the schedule).
        ticker: the worker's periodic ticker (``ticker.py``), run in the same loop, so
            a tick it claims is published in the same pass; it may shorten the wait.

    :meth:`wake` makes it look at once: this worker's recorder calls it after storing
    anything it scheduled (retries, canvas follow-ups due now), so those never wait for
    the idle pace.
    """

    def __init__(self, app: YADTQ, link: Optional[Link] = None,
                 ticker: Optional[Ticker] = None) -> None:
        self.app = app
        self.link = link
        self._woken = threading.Event()
        #: Claims due periodic ticks into the schedule just before each look at it.
        self.ticker = ticker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yadtq-scheduler", daemon=True)
        self._lock = threading.Lock()
        #: Task ids of the copies being published now -> why the broker refused one.
        self._publishing: dict[str, Optional[str]] = {}
        self._hooked = False
        self._failing_since: Optional[float] = None
        #: Whether the backend pushes wake-ups now (set by the worker when it listens).
        self.pushed: Callable[[], bool] = lambda: False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()
        if self._thread.is_alive():
            self._thread.join(5)

    # ------------------------------------------------------------------ delivery reports
    def _hook(self) -> None:
        """Route the broker's refusals of our own copies here; others go on to the app."""
        if self._hooked:
            return
        broker = self.app.broker
        inner: Optional[DeliveryErrorHook] = broker.on_delivery_error

        def on_delivery_error(task_id: Optional[str], error: str) -> None:
            with self._lock:
                ours = task_id is not None and task_id in self._publishing
                if ours:
                    self._publishing[task_id] = error  # type: ignore[index]
            if not ours and inner is not None:
                inner(task_id, error)

        broker.on_delivery_error = on_delivery_error
        self._hooked = True

    # ------------------------------------------------------------------ publishing
    def publish_due(self) -> int:
        """Move every due message to its queue; how many were moved."""
        self._hook()
        moved = 0
        while True:
            entries = self.app.backend.claim_due(None, BATCH, LEASE)
            if not entries:
                return moved
            done, complete = self._publish(entries)
            moved += done
            if not complete or len(entries) < BATCH:
                return moved

    def _publish(self, entries: Sequence[ScheduledMessage]) -> tuple[int, bool]:
        """Publish one claimed batch, each entry on its own; (how many moved, whether the
        broker confirmed every copy it did not refuse)."""
        refused: dict[str, str] = {}  # task id -> reason, refused for good
        sent: list[ScheduledMessage] = []
        for_good: dict[str, str] = {}
        with self._tracking(entries) as reports:
            for entry in entries:
                error = self._send(entry)
                if error is None:
                    sent.append(entry)
                else:
                    refused[entry.task_id] = error
            pending = self.app.broker.flush(LEASE / 2) if sent else 0
        passing = 0
        for task_id, error in reports.items():
            if error is None:
                continue
            if permanent(error):
                for_good[task_id] = error
            else:
                passing += 1
                logger.warning("scheduled task %s not delivered (%s); it stays scheduled and is "
                               "published again within %.0f s", task_id, error, LEASE,
                               extra={"task_id": task_id})
        # A broker refuses a whole record batch for one oversized member: refusals of
        # entries sent together are confirmed by sending each alone before giving up.
        retried: list[ScheduledMessage] = []
        for entry in sent:
            if entry.task_id in for_good:
                error = self._send_alone(entry) if len(sent) > 1 else for_good[entry.task_id]
                if error is None:
                    retried.append(entry)
                elif permanent(error):
                    refused[entry.task_id] = error
                else:
                    passing += 1
        if refused:
            self._give_up([e for e in entries if e.task_id in refused], refused)
        if pending:
            logger.warning("%d scheduled messages not confirmed by the broker; "
                           "they stay scheduled and will be published again", pending)
            return 0, False
        delivered = [e for e in sent if reports.get(e.task_id) is None] + retried
        self.app.backend.release_due(delivered)
        if delivered:
            logger.debug("published %d due messages", len(delivered))
        return len(delivered), not passing

    @contextmanager
    def _tracking(self, entries: Sequence[ScheduledMessage]) -> Iterator[dict[str, Optional[str]]]:
        """While publishing ``entries``, the broker's refusals of them are collected in the
        dict yielded (task id -> error, ``None``: not refused)."""
        with self._lock:
            self._publishing = {e.task_id: None for e in entries}
        reports: dict[str, Optional[str]] = {}
        try:
            yield reports
        finally:
            with self._lock:
                reports.update(self._publishing)
                self._publishing = {}

    def _send(self, entry: ScheduledMessage) -> Optional[str]:
        """Hand one entry to the broker; why it was refused for good, if it was.

        Raises:
            BrokerUnavailable: a passing refusal (the broker is down): the rest of the
                batch stays leased and is published once the lease ends.
        """
        try:
            self.app.broker.publish([entry.message])
        except (ConfigurationError, SerializationError) as exc:
            return str(exc)
        except BrokerUnavailable as exc:
            if not permanent(str(exc)):
                raise
            return str(exc)
        return None

    def _send_alone(self, entry: ScheduledMessage) -> Optional[str]:
        """Publish one entry by itself and wait for it: why it was refused, or ``None``."""
        with self._tracking([entry]) as reports:
            error = self._send(entry)
            if error is None and self.app.broker.flush(LEASE / 2):
                raise BrokerUnavailable(f"scheduled task {entry.task_id} not confirmed by the broker")
        return error or reports.get(entry.task_id)

    def _give_up(self, entries: Sequence[ScheduledMessage], reasons: dict[str, str]) -> None:
        """Entries the broker refuses for good: dead-letter each (if the broker can), record
        its task failed with the reason, and drop it from the schedule."""
        now = time.time()
        changes = []
        for entry in entries:
            reason = f"not published: {reasons[entry.task_id]}"
            logger.error("scheduled task %s refused by the broker for good: %s", entry.task_id,
                         reasons[entry.task_id], extra={"task_id": entry.task_id})
            try:
                self.app.broker.dead_letter_message(entry.message, reason)
            except YADTQError as exc:
                logger.warning("scheduled task %s not dead-lettered: %s", entry.task_id, exc,
                               extra={"task_id": entry.task_id})
            changes.append(StateChange(entry.task_id, states.FAILED, now, queue=entry.message.queue,
                                       error=ErrorInfo("yadtq.exceptions.BrokerUnavailable", reason,
                                                       [reason]), dead_lettered=True))
        self.app.backend.record(changes)
        self.app.backend.release_due(entries)

    # ------------------------------------------------------------------ thread
    def wake(self) -> None:
        """Look at the schedule now (something was just scheduled); any thread."""
        self._woken.set()

    def next_wait(self) -> float:
        """Seconds until the next look: ``INTERVAL`` while busy, else until the earliest
        scheduled message is due, at most ``IDLE_INTERVAL`` (``PUSHED_IDLE_INTERVAL``
        while wake-ups are pushed)."""
        longest = PUSHED_IDLE_INTERVAL if self.pushed() else IDLE_INTERVAL
        due = self.app.backend.next_due()
        if due is None:
            return longest
        # Due times are on the backend's clock: app.now() estimates it without a round trip.
        return min(longest, max(INTERVAL, due - self.app.now()))

    def _run(self) -> None:
        wait = INTERVAL
        while True:
            self._woken.wait(wait)
            self._woken.clear()
            if self._stop.is_set():
                return
            wait = INTERVAL
            try:
                if self.ticker is not None:
                    self._tick()
                if not self.publish_due():
                    wait = self.next_wait()
                if self.ticker is not None:
                    wait = min(wait, self.ticker.wait_hint())
            except YADTQError as exc:
                self._failed(exc)
                continue
            except Exception:
                logger.exception("scheduler failed")
                continue
            self._recovered()

    def _tick(self) -> None:
        """Claim due periodic ticks; a bug in the ticker never stops the publishing."""
        assert self.ticker is not None
        try:
            self.ticker.turn()
        except YADTQError:
            raise
        except Exception:
            logger.exception("periodic ticker failed")

    def _failed(self, exc: YADTQError) -> None:
        """Log a failing look at the schedule once per outage, not ten times a second."""
        if self.link is not None:
            self.link.failed(exc)
        elif self._failing_since is None:
            logger.warning("scheduler: %s; retrying until it works", exc)
        else:
            logger.debug("scheduler: %s", exc)
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        if self.link is not None:
            self.link.ok()
        else:
            logger.warning("scheduler: working again after %.1f s",
                           time.monotonic() - self._failing_since)
        self._failing_since = None
