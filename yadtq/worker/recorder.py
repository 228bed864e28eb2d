"""The worker's recorder thread: store each batch of outcomes, then report it done.

Pool threads put ``(job, outcome)`` pairs on a queue; the recorder stores them in
the backend in batches (one round trip; a retry's next attempt goes to the schedule
and what a canvas outcome sets off is recorded in the same step) and only then
reports their deliveries done (acks-late, DESIGN.md §4). The owner thread's half is
``consumer.py``'s :class:`~yadtq.worker.consumer.TaskConsumer`, which starts each job
and shares with the recorder the jobs it is running.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Optional

from .. import states
from ..canvas.followups import FollowUps
from ..envelope import Envelope, encode
from ..exceptions import YADTQError
from ..transports.base import Consumer, Delivery, FailedMessage, Message, ScheduledMessage
from .attempts import AttemptKey, Identity, WorkerStats, attempt_of
from .executor import Outcome, outcome_change
from .links import Link
from .pools import Job
from .storing import bounded, outcome_size, persist, task_fields

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: How long the recorder waits for an outcome before it looks at its stop event (the
#: worker also wakes it with ``None`` when it stops).
RECORDER_WAIT = 5.0
#: Most outcomes stored in one backend round trip.
RECORD_BATCH = 512
#: Most result and error bytes stored in one backend round trip (one larger outcome goes alone).
RECORD_BATCH_BYTES = 8 * 1024 * 1024


class Recorder:
    """Stores outcomes in batches and only then reports their deliveries done.

    ``running`` (guarded by ``running_lock``) are the jobs the owner thread started:
    a stored job leaves it, its deliveries (duplicates included) done in the same
    step. ``release`` gives back the concurrency slots of attempts whose outcome is
    stored (``TaskConsumer._release``).
    """

    def __init__(self, app: YADTQ, consumer: Consumer, identity: Identity, stats: WorkerStats,
                 outcomes: queue.SimpleQueue[Optional[tuple[Job, Outcome]]],
                 running: dict[AttemptKey, Job], running_lock: threading.Condition,
                 release: Callable[[Sequence[Envelope], threading.Event], None], *,
                 on_stored: Callable[[int], None], on_scheduled: Callable[[], None],
                 backend_link: Optional[Link]) -> None:
        self.app = app
        self.consumer = consumer
        self.identity = identity
        self.stats = stats
        self.outcomes = outcomes
        self._running = running
        self._running_lock = running_lock
        self._release = release
        self.on_stored = on_stored
        self.on_scheduled = on_scheduled
        self.backend_link = backend_link
        self.secret_key = app.settings.secret_key

    def record_forever(self, stop: threading.Event) -> None:
        """Store outcomes in batches, then mark their deliveries done, until ``stop`` and idle.

        Blocks until an outcome comes; a ``None`` in the queue (put there after ``stop``
        is set) wakes it to look at ``stop``."""
        while True:
            try:
                first = self.outcomes.get(timeout=RECORDER_WAIT)
            except queue.Empty:
                first = None
            if first is None:
                if stop.is_set() and self.outcomes.empty():
                    return
                continue
            batch = [first]
            size = outcome_size(first[1])
            while len(batch) < RECORD_BATCH and size < RECORD_BATCH_BYTES:
                try:
                    item = self.outcomes.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # a wake-up: keep it for after this batch
                    self.outcomes.put(None)
                    break
                batch.append(item)
                size += outcome_size(item[1])
            self.store(batch, stop)

    def store(self, batch: Sequence[tuple[Job, Outcome]], stop: threading.Event) -> None:
        """Store one batch; retries while the backend is down, never drops it."""
        try:
            self._store(batch, stop)
        finally:
            self.on_stored(len(batch))

    def _store(self, batch: Sequence[tuple[Job, Outcome]], stop: threading.Event) -> None:
        changes, scheduled = [], []
        limit = self.app.settings.result_max_bytes
        batch = [(job, bounded(job.envelope, outcome, limit)) for job, outcome in batch]
        follow_ups = FollowUps(self.app)  # canvas: stored in the same step as the outcomes
        for job, outcome in batch:
            envelope = job.envelope
            changes.append(outcome_change(envelope, outcome, self.identity.name))
            follow_ups.add(envelope, outcome)
            if outcome.state == states.RETRYING and outcome.retry_eta is not None:
                retry = envelope.next_attempt(outcome.retry_eta)
                scheduled.append(ScheduledMessage(retry.id, outcome.retry_eta, Message(
                    job.delivery.queue, encode(retry, self.secret_key), retry.routing_key(),
                    retry.headers())))
            self._log(envelope, outcome)
        # Kept before the failure is recorded, so every task seen failed can be retried.
        failed = [FailedMessage(job.envelope.id, job.envelope.task, outcome.finished, job.delivery.body)
                  for job, outcome in batch if outcome.state == states.FAILED]
        try:
            if failed:
                persist("keeping failed messages", lambda: self.app.backend.keep_failed(failed), stop,
                        self.backend_link)
            persist("storing outcomes",
                    lambda: follow_ups.record(self.app.backend, changes, scheduled), stop,
                    self.backend_link)
        except YADTQError as exc:
            logger.critical("cannot store %d outcomes (%s); their tasks will be delivered again",
                            len(batch), exc)
            return
        if scheduled or follow_ups.scheduled:
            self.on_scheduled()
        finished: list[Delivery] = []
        with self._running_lock:
            for job, _ in batch:
                self._running.pop(attempt_of(job.envelope), None)
                finished.append(job.delivery)
                finished.extend(job.duplicates)
            # Done before ``drain`` can see the jobs gone: a revocation commits right after.
            self.consumer.done(finished)
            self._running_lock.notify_all()
        self._release([job.envelope for job, _ in batch], stop)
        self.stats.count([outcome for _, outcome in batch])
        observer = self.stats.observer
        if observer is not None:
            observer.observe([(job.envelope.task, outcome.state, outcome.runtime) for job, outcome in batch])

    def _log(self, envelope: Envelope, outcome: Outcome) -> None:
        if outcome.state == states.SUCCESS and not logger.isEnabledFor(logging.INFO):
            return  # the common case: build nothing per task
        fields = task_fields(envelope)
        fields["duration"] = round(outcome.runtime, 6)
        err = outcome.error
        if outcome.state == states.SUCCESS:
            logger.info("task %s[%s] succeeded in %.3f s", envelope.task, envelope.id, outcome.runtime,
                        extra=fields)
        elif outcome.state == states.RETRYING:
            logger.warning("task %s[%s] retrying (attempt %d) after %s: %s", envelope.task, envelope.id,
                           envelope.retries + 1, err.type if err else "?", err.message if err else "",
                           extra=fields)
        else:
            fields["traceback"] = err.traceback if err else None
            logger.error("task %s[%s] failed in %.3f s: %s: %s", envelope.task, envelope.id,
                         outcome.runtime, err.type if err else "?", err.message if err else "",
                         extra=fields)
