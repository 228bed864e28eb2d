"""The worker's loop: fetch, dispatch, collect outcomes, mark done.

One thread owns the broker consumer and calls ``fetch``; pool threads execute;
a recorder thread stores each batch of outcomes in the backend and only then
reports the deliveries done (acks-late, DESIGN.md §4): a worker killed at any
moment loses no task, because nothing is done before its outcome is stored.
This module is the owner thread's side; decoding and dead-lettering what can never
run is ``intake.py``'s, the recorder thread ``recorder.py``'s.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Optional

from .. import states
from ..canvas.followups import FollowUps, record_unrun
from ..envelope import Envelope
from ..exceptions import YADTQError
from ..transports.base import (
    BUSY,
    RUN,
    Claim,
    Consumer,
    Delivery,
    ErrorInfo,
    Message,
    ScheduledMessage,
    StateChange,
)
from . import admission, slots
from .attempts import (
    AttemptKey,
    Identity,
    Pending,
    WorkerStats,
    attempt_of,
    by_priority,
)
from .details import CallRecorder
from .executor import Outcome
from .intake import Intake
from .links import Link
from .pools import Job, Pool
from .recorder import Recorder
from .storing import persist, task_fields

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)


#: How long ``fetch`` may block while parked deliveries wait to be claimed again.
FETCH_TIMEOUT = 0.1
#: How long ``fetch`` may block otherwise (a delivery ends the wait at once); bounds how
#: fast the loop notices a stop. At most half the heartbeat interval (health).
IDLE_FETCH_TIMEOUT = 0.5
#: ... once no delivery came for :data:`LONG_IDLE_AFTER` seconds. Each return is a turn
#: of the loop (its commit, flow and rebalance bookkeeping), and a longer wait costs
#: nothing more: confluent-kafka wakes every 200 ms inside a blocking ``poll`` whatever
#: its timeout (to run signal handlers). An idle Kafka + Redis worker, paired runs of
#: ``benchmarks/idle.py --seconds 15``: the loop's thread 13.4-14.9 ms at 0.5 s, 7.2-7.3
#: ms at 2 s; the process 0.27-0.33 % of a core against 0.20 %. A worker stopped
#: while long idle notices it up to this late.
LONG_IDLE_FETCH_TIMEOUT = 2.0
#: Seconds without a delivery after which the loop waits :data:`LONG_IDLE_FETCH_TIMEOUT`.
LONG_IDLE_AFTER = 5.0
#: Longest wait between two claims of a parked delivery (also at most ``heartbeat_interval``):
#: a task whose holder died runs again within ``worker_unresponsive_after`` plus this.
RECLAIM_INTERVAL = 1.0
#: A claim older than this share of ``worker_unresponsive_after`` when its job would
#: start is not trusted: the job goes back to be claimed again (see ``may_start``).
STALE_CLAIM_SHARE = 1 / 3
#: A job claimed longer ago than this when a thread takes it (it was claimed ahead and
#: waited for a thread) is claimed again right before it starts, so a revoke that came
#: while it waited stops it (see ``may_start``). Below it, the wait is a thread hand-off.
RECLAIM_BEFORE_START_AFTER = 0.02


class TaskConsumer:
    """Moves deliveries from a consumer through a pool and records their outcomes.

    A claim answered ``BUSY`` (the task runs on another live instance) leaves its
    delivery *parked*: outstanding (so its offset is not committed), not in the
    pool, claimed again every ``reclaim_interval`` seconds until the task is ready
    (then reported done) or its holder is found dead (then run here). So a task
    stays recoverable until its outcome is stored, whoever held it.
    """

    def __init__(self, app: YADTQ, consumer: Consumer, pool: Pool, identity: Identity,
                 stats: WorkerStats, outcomes: queue.SimpleQueue[Optional[tuple[Job, Outcome]]],
                 stop: threading.Event, on_stored: Callable[[int], None] = lambda count: None,
                 backend_link: Optional[Link] = None,
                 on_scheduled: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.consumer = consumer
        self.pool = pool
        self.identity = identity
        self.stats = stats
        self.outcomes = outcomes
        self.stop = stop
        self.backend_link = backend_link
        #: Called after this worker stored messages in the schedule (the scheduler wakes).
        self.on_scheduled = on_scheduled
        #: Attempts this worker is running: a second delivery of one is attached to
        #: its job (and reported done with it) instead of being claimed again.
        self._running: dict[AttemptKey, Job] = {}
        #: Guards ``_running``; notified when jobs leave it (``drain`` waits on it).
        self._running_lock = threading.Condition()
        #: Attempts running on another live instance, oldest first (owner thread only).
        self._parked: dict[AttemptKey, Pending] = {}
        self._next_reclaim = 0.0
        #: Jobs refused at start (stale claims), to be parked by the owner thread.
        self._returned: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        settings = app.settings
        self.stale_claim_after = settings.worker_unresponsive_after * STALE_CLAIM_SHARE
        if pool is not None:  # some tests drive the consumer without a pool
            pool.gate = self.may_start
        self.reclaim_interval = max(0.05, min(RECLAIM_INTERVAL, settings.heartbeat_interval))
        self.idle_fetch_timeout = max(FETCH_TIMEOUT,
                                      min(IDLE_FETCH_TIMEOUT, settings.heartbeat_interval / 2))
        self.long_idle_fetch_timeout = max(self.idle_fetch_timeout,
                                           min(LONG_IDLE_FETCH_TIMEOUT, settings.heartbeat_interval / 2))
        #: When the last delivery came (monotonic): the loop waits longer once long idle.
        self._last_delivery = time.monotonic()
        #: The recorder thread's half: stores outcomes, then reports their deliveries done.
        self.recorder = Recorder(app, consumer, identity, stats, outcomes, self._running,
                                 self._running_lock, self._release, on_stored=on_stored,
                                 on_scheduled=on_scheduled, backend_link=backend_link)
        #: Decodes deliveries; dead-letters those that can never run.
        self.intake = Intake(app, consumer, identity, stop, backend_link)
        #: Saves the calls of started tasks for the dashboard, in the background.
        self.details = CallRecorder(app, stop)

    @property
    def parked(self) -> int:
        """Deliveries waiting for a task that runs on another live worker."""
        return len(self._parked)

    def record_forever(self, stop: threading.Event) -> None:
        """The recorder thread (:meth:`Recorder.record_forever`): store outcomes in batches,
        then mark their deliveries done, until ``stop`` and idle."""
        self.recorder.record_forever(stop)

    # ------------------------------------------------------------------ owner thread
    def turn(self) -> int:
        """One iteration: claim parked deliveries again when due, fetch what the pool has
        room for and dispatch it."""
        self.stats.last_turn = time.monotonic()
        self._take_back_returned()
        free = self.pool.free_slots()
        if self._parked and free > 0 and time.monotonic() >= self._next_reclaim:
            self.reclaim(free)
            free = self.pool.free_slots()
        if free <= 0:
            self.pool.wait_for_slot(FETCH_TIMEOUT)
            self.consumer.fetch(0, 0)  # keep the connection serviced while the pool is full
            return 0
        deliveries = self.consumer.fetch(free, self._fetch_timeout())
        if deliveries:
            self._last_delivery = time.monotonic()
            self.dispatch(deliveries)
        return len(deliveries)

    def _fetch_timeout(self) -> float:
        """Short while parked deliveries wait to be claimed again, else long, and longer
        once no delivery came for a while: an idle worker wakes a few times a second,
        not ten, and a long-idle one every other second."""
        if self._parked or not self._returned.empty():
            return FETCH_TIMEOUT
        if time.monotonic() - self._last_delivery >= LONG_IDLE_AFTER:
            return self.long_idle_fetch_timeout
        return self.idle_fetch_timeout

    def dispatch(self, deliveries: Sequence[Delivery]) -> None:
        """Decode, set aside what must wait or must not run, claim the rest, start it.

        Never raises for a bad message: whatever fails to decode or validate is
        dead-lettered with its reason and the rest of the batch goes on.
        """
        now = self.app.now()  # eta and expiry are on the backend's clock, not this host's
        runnable: dict[AttemptKey, Pending] = {}
        settled: list[Delivery] = []
        changes: list[StateChange] = []
        scheduled: list[ScheduledMessage] = []
        follow_ups = FollowUps(self.app)  # canvas: what an expired task of a canvas sets off
        for delivery in deliveries:
            envelope = self.intake.decode(delivery)
            if envelope is None:
                continue
            attempt = attempt_of(envelope)
            if envelope.expires is not None and envelope.expires < now:
                logger.info("task %s[%s] expired before it ran", envelope.task, envelope.id,
                            extra=task_fields(envelope))
                changes.append(StateChange(
                    envelope.id, states.REVOKED, now, worker=self.identity.name, name=envelope.task,
                    queue=envelope.queue, error=ErrorInfo("yadtq.exceptions.Revoked", "expired")))
                follow_ups.ended(envelope, states.REVOKED, error=changes[-1].error)
                settled.append(delivery)
            elif envelope.eta is not None and envelope.eta > now:
                changes.append(StateChange(envelope.id, states.SCHEDULED, now, name=envelope.task,
                                           queue=envelope.queue, eta=envelope.eta))
                scheduled.append(ScheduledMessage(envelope.id, envelope.eta, Message(
                    delivery.queue, delivery.body, delivery.key, delivery.headers)))
                settled.append(delivery)
            elif attempt in runnable:
                runnable[attempt].duplicates.append(delivery)
            elif attempt in self._parked:
                self._parked[attempt].duplicates.append(delivery)
            elif not self._attach_to_running(envelope, delivery):
                runnable[attempt] = Pending(envelope, delivery)
        if changes:
            persist("recording scheduled and expired tasks",
                    lambda: follow_ups.record(self.app.backend, changes, scheduled), self.stop,
                    self.backend_link)
            if scheduled or follow_ups.scheduled:
                self.on_scheduled()
        if settled:
            self.consumer.done(settled)
        if runnable:
            self._claim_and_start(self._admitted(by_priority(runnable.values())), now)

    def _admitted(self, pending: list[Pending]) -> list[Pending]:
        """Those of ``pending`` within their rate and concurrency limits; the others now
        wait in the schedule (``admission.admit``) or for a slot (``slots.admit``) and
        their deliveries are reported done."""
        go, changes, spent = persist("asking the rate limits", lambda: admission.admit(self.app, pending),
                                     self.stop, self.backend_link)
        if changes:
            persist("recording tasks waiting on a rate limit",
                    lambda: self.app.backend.record(changes), self.stop, self.backend_link)
        if spent:
            self.consumer.done(spent)
        return self._slot_admitted(go)

    def _slot_admitted(self, pending: list[Pending]) -> list[Pending]:
        """Those of ``pending`` that got a concurrency slot (or need none); the others wait
        in the backend for one, recorded ``scheduled``, their deliveries reported done."""
        if not pending:
            return pending
        go, changes, spent, promoted = persist(
            "asking for concurrency slots",
            lambda: slots.admit(self.app, self.identity.instance, pending), self.stop,
            self.backend_link)
        if changes:
            persist("recording tasks waiting for a concurrency slot",
                    lambda: self.app.backend.record(changes), self.stop, self.backend_link)
        if spent:
            self.consumer.done(spent)
        if promoted:
            self.on_scheduled()
        return go

    def _release(self, envelopes: Sequence[Envelope], stop: threading.Event) -> None:
        """Give back the concurrency slots of attempts whose outcome is stored or that will
        not run here. A failure is only logged: a slot whose attempt is over is freed
        by the next step on its key (``sweep_slots`` every heartbeat)."""
        try:
            promoted = persist("releasing concurrency slots", lambda: slots.release(self.app, envelopes),
                               stop, self.backend_link)
        except YADTQError as exc:
            logger.warning("could not release %d concurrency slots (%s); the next sweep frees them",
                           len(envelopes), exc)
            return
        if promoted:
            self.on_scheduled()

    def _claim_and_start(self, pending: list[Pending], now: float, reclaimed: bool = False) -> None:
        """Claim each attempt: run it, report it done (ready, superseded, revoked), or park
        it (running on another live instance). ``reclaimed``: ``pending`` were parked
        already (their refusal was logged and counted when they were parked)."""
        claims = [Claim(p.envelope.id, p.envelope.task, p.envelope.queue, p.envelope.retries,
                        self.identity.instance, self.identity.name, now, p.envelope.created)
                  for p in pending]
        def ask() -> tuple[float, list[str]]:
            # When the request went out: a freeze while it is out counts. The last try's
            # time: its answer is the backend's state when it ran (an earlier try's grant,
            # its reply lost, is granted again or refused then).
            return time.monotonic(), self.app.backend.claim(claims)

        asked, decisions = persist("claiming tasks", ask, self.stop, self.backend_link)
        spent: list[Delivery] = []
        refused: list[str] = []  # for metrics: each refusal once (a parked attempt when parked)
        unrun: list[Envelope] = []  # canvas tasks not run: their idempotent follow-ups again
        started: list[Job] = []
        for entry, decision in zip(pending, decisions):
            envelope = entry.envelope
            if decision != RUN and (decision != BUSY or not reclaimed):
                refused.append(decision)
            if decision == RUN:
                if logger.isEnabledFor(logging.INFO):
                    logger.info("task %s[%s] received", envelope.task, envelope.id,
                                extra=task_fields(envelope))
                started.append(Job(envelope, entry.delivery, duplicates=entry.duplicates, asked=asked))
            elif decision == BUSY:
                attempt = attempt_of(envelope)
                if not reclaimed and attempt not in self._parked:  # once per parked attempt
                    logger.info("task %s[%s] runs on another live worker; waiting for its outcome",
                                envelope.task, envelope.id, extra=task_fields(envelope))
                self._parked[attempt] = entry
            else:
                logger.info("task %s[%s] not run: %s", envelope.task, envelope.id, decision,
                            extra=task_fields(envelope))
                spent.extend(entry.deliveries())
                if envelope.canvas:
                    unrun.append(envelope)
        if started:
            with self._running_lock:  # known as running before any of them can end
                for job in started:
                    self._running[attempt_of(job.envelope)] = job
            for job in started:
                self.pool.submit(job)
            self.details.started([job.envelope for job in started])
        if unrun:
            persist("recording what canvas tasks not run set off",
                    lambda: record_unrun(self.app, unrun), self.stop, self.backend_link)
        if spent:
            self.consumer.done(spent)
        unclaimed = [e.envelope for e, d in zip(pending, decisions) if d not in (RUN, BUSY)]
        if unclaimed:
            self._release(unclaimed, self.stop)
        observer = self.stats.observer
        if observer is not None and refused:
            observer.claims_refused(refused)

    def reclaim(self, free: int) -> None:
        """Claim up to ``free`` parked deliveries again (oldest first); drop those whose
        partition this worker no longer owns (its next owner takes over)."""
        self._next_reclaim = time.monotonic() + self.reclaim_interval
        self._release_unowned()
        due = list(itertools.islice(self._parked, free))
        if not due:
            return
        # Claimed ones leave the parked set; those still busy go back at its end. A
        # concurrency-limited one asks for its slot again: its holder may be found dead.
        self._claim_and_start(self._slot_admitted([self._parked.pop(attempt) for attempt in due]),
                              self.app.now(), reclaimed=True)

    def drain(self, timeout: float) -> None:
        """Partitions are being revoked (``Consumer.revoking``; no longer ``owns``): release
        their parked deliveries at once (the partitions' next owner gets them again; nothing
        ran here) and wait up to ``timeout`` until no job of theirs is left running or
        unstored. Jobs of other partitions are not waited for."""
        self._take_back_returned()
        self._release_unowned()
        consumer = self.consumer

        def left() -> int:
            return sum(1 for job in self._running.values()
                       if any(consumer.revoking(d) for d in (job.delivery, *job.duplicates)))

        with self._running_lock:
            if not self._running_lock.wait_for(lambda: left() == 0, timeout):
                logger.info("revocation drain: %d tasks of revoked partitions still running after "
                            "%.0f s; they will be redelivered", left(), timeout)

    def _release_unowned(self) -> None:
        """Drop parked deliveries of partitions this worker no longer owns."""
        dropped = 0
        for attempt, entry in list(self._parked.items()):
            owned = [d for d in entry.deliveries() if self.consumer.owns(d)]
            dropped += len(entry.duplicates) + 1 - len(owned)
            if not owned:
                del self._parked[attempt]
            elif len(owned) <= len(entry.duplicates):  # keep what came since, e.g. reassigned
                self._parked[attempt] = Pending(entry.envelope, owned[0], owned[1:])
        if dropped:
            logger.debug("released %d parked deliveries of partitions no longer owned", dropped)

    def may_start(self, job: Job) -> bool:
        """Whether a claimed job may start now (the pool asks right before running it).

        A job that waited for a thread since its claim (claimed ahead while the pool
        was busy) is claimed again first: a revoke that came meanwhile makes the claim
        refuse it, so a task revoked before it started never starts. A claim older than
        ``stale_claim_after`` (the process was frozen or starved since) may have lapsed:
        another worker may have found this one dead and run the task. Its age counts
        from when it was asked for, so a freeze while the request was out (the grant
        read only on waking) counts too. A job refused either way goes back to the
        parked deliveries, claimed again by the owner thread (which settles a revoked
        or finished one as any claim does).
        """
        now = time.monotonic()
        envelope = job.envelope
        age = now - job.asked
        if age > self.stale_claim_after:
            logger.warning("task %s[%s] claimed %.1f s ago and not started: claiming it again",
                           envelope.task, envelope.id, age, extra=task_fields(envelope))
        elif now - job.claimed <= RECLAIM_BEFORE_START_AFTER or self._claim_again(job):
            return True
        with self._running_lock:
            self._running.pop(attempt_of(envelope), None)
            self._running_lock.notify_all()
        self._returned.put(Pending(envelope, job.delivery, list(job.duplicates)))
        return False

    def _claim_again(self, job: Job) -> bool:
        """Claim ``job``, which waited for a thread, once more right before it starts (on the
        pool's thread); whether it may run. Not granted (revoked meanwhile, finished, held by
        another instance) or the backend not answering: the owner thread takes it back."""
        envelope = job.envelope
        claim = Claim(envelope.id, envelope.task, envelope.queue, envelope.retries,
                      self.identity.instance, self.identity.name, self.app.now(), envelope.created)
        asked = time.monotonic()
        try:
            decision = self.app.backend.claim([claim])[0]
        except YADTQError as exc:
            logger.info("task %s[%s]: claiming it again before it starts failed (%s); retrying later",
                        envelope.task, envelope.id, exc, extra=task_fields(envelope))
            return False
        if decision != RUN:
            logger.info("task %s[%s] not started: %s since it was claimed", envelope.task, envelope.id,
                        decision, extra=task_fields(envelope))
            return False
        read = time.monotonic()
        if read - asked > self.stale_claim_after:  # frozen while this claim was out
            logger.warning("task %s[%s]: claiming it before it starts took %.1f s; claiming it again",
                           envelope.task, envelope.id, read - asked, extra=task_fields(envelope))
            return False
        job.asked, job.claimed = asked, read
        return True

    def _take_back_returned(self) -> None:
        """Park the jobs ``may_start`` refused, to be claimed again at once."""
        while True:
            try:
                entry = self._returned.get_nowait()
            except queue.Empty:
                return
            attempt = attempt_of(entry.envelope)
            with self._running_lock:  # claimed and started again meanwhile: done with that run
                job = self._running.get(attempt)
                if job is not None:
                    job.duplicates.extend(entry.deliveries())
                    continue
            parked = self._parked.get(attempt)
            if parked is not None:  # delivered again meanwhile: keep every delivery
                parked.duplicates.extend(entry.deliveries())
            else:
                self._parked[attempt] = entry
            self._next_reclaim = 0.0

    def _attach_to_running(self, envelope: Envelope, delivery: Delivery) -> bool:
        """Whether ``delivery`` repeats an attempt this worker is running; if so it is reported
        done together with the running one, so the task neither runs twice nor is lost."""
        attempt = attempt_of(envelope)
        # Looked up without the lock first (the common case: not running here). Only this
        # thread, the owner, adds to ``_running``: a job cannot appear in it meanwhile.
        if attempt not in self._running:
            return False
        with self._running_lock:
            job = self._running.get(attempt)
            if job is None:
                return False
            job.duplicates.append(delivery)
        logger.info("task %s[%s] delivered again while running here", envelope.task, envelope.id,
                    extra=task_fields(envelope))
        return True
