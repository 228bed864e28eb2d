"""The transport contract: :class:`Broker`, :class:`Consumer` and :class:`ResultBackend`.

Everything is batch-first. A consumer hands the worker a batch of deliveries and
takes acknowledgements in batches; a backend records the state changes of a
batch in one round trip. ``memory.py`` is the reference implementation every
other transport must match (``tests/contract`` runs one suite over all of them).

Transports are found by URL scheme through the ``yadtq.brokers`` and
``yadtq.backends`` entry points, so a third-party package can add one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urlsplit

from importlib_metadata import entry_points

from ..exceptions import BrokerUnavailable, ConfigurationError

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

BROKER_GROUP = "yadtq.brokers"
#: Seconds one blocking wait of :meth:`ResultBackend.wait_async`'s default lasts.
ASYNC_WAIT_SLICE = 1.0
BACKEND_GROUP = "yadtq.backends"


# --------------------------------------------------------------------------- broker side


@dataclass(frozen=True)
class Message:
    """An encoded envelope addressed to a queue, ready to publish."""

    queue: str
    body: bytes
    key: Optional[bytes] = None
    headers: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """A message as a consumer received it.

    ``token`` is opaque to everyone but the transport that made it (partition
    and offset for Kafka, a row id for SQLite).
    """

    body: bytes
    queue: str
    headers: Mapping[str, bytes] = field(default_factory=dict)
    key: Optional[bytes] = None
    token: Any = None


#: Called by a consumer that is about to lose deliveries (e.g. a Kafka rebalance):
#: the worker finishes what it can within ``timeout`` seconds and reports it done.
DrainCallback = Callable[[float], None]


class Consumer(ABC):
    """One worker's subscription to its queues.

    ``fetch`` and ``close`` are called only by the thread that owns the consumer;
    ``done`` and ``dead_letter`` may be called from any thread.
    """

    @abstractmethod
    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Up to ``max_items`` deliveries, waiting at most ``timeout`` seconds for the first.

        ``max_items`` may be 0: the consumer then only services its connection
        (commits, group membership, lease renewal) and returns nothing.
        """

    @abstractmethod
    def done(self, deliveries: Sequence[Delivery]) -> None:
        """Report deliveries whose outcome is stored; they are never delivered again.

        Acks-late: only call this after the outcome is safely in the backend.
        """

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a delivery that can never run to the dead-letter queue, and mark it done."""

    @abstractmethod
    def close(self) -> None:
        """Commit what is done and leave; unfinished deliveries will be redelivered."""

    def in_flight(self) -> int:
        """Deliveries handed out and not yet done (for health and tests)."""
        return 0

    def owns(self, delivery: Delivery) -> bool:
        """Whether ``delivery`` is still this consumer's to report done (Kafka: its
        partition was not revoked since); a worker drops deliveries it kept waiting
        once they are not. Any thread."""
        return True


#: Called with (task id or ``None``, error text) for a message the broker finally refused.
DeliveryErrorHook = Callable[[Optional[str], str], None]


class Broker(ABC):
    """Carries encoded envelopes to queues. Thread-safe for publishing."""

    scheme: str = ""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        #: Set by the app: told about messages that were accepted by ``publish`` but
        #: that the transport could finally not deliver (brokers that publish asynchronously).
        self.on_delivery_error: Optional[DeliveryErrorHook] = None

    @abstractmethod
    def publish(self, messages: Sequence[Message]) -> None:
        """Hand messages to the transport. Need not wait for the network; see :meth:`flush`.

        Raises:
            BrokerUnavailable: the transport refused the messages.
        """

    @abstractmethod
    def consumer(self, queues: Sequence[str], *, on_drain: Optional[DrainCallback] = None,
                 worker: Optional[str] = None) -> Consumer:
        """A new consumer of ``queues``, owned by the calling thread. ``worker`` is the
        consuming worker's name (Kafka may use it for static group membership)."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Drop every waiting message of ``queue``; returns how many (or -1 if unknown)."""

    def depth(self, queue: str) -> Optional[int]:
        """Messages waiting in ``queue`` (Kafka: consumer-group lag), or ``None`` if unknown."""
        return None

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        """The most recent dead-lettered messages, newest last (for tests and the monitor)."""
        return []

    def dead_letter_message(self, message: Message, reason: str) -> None:
        """Put a message that was never delivered and never can be (e.g. a scheduled one
        the broker refuses) in the dead-letter queue, with ``reason``.

        Raises:
            BrokerUnavailable: not stored (the default: this broker keeps no dead letters).
        """
        raise BrokerUnavailable(f"the {self.scheme}:// broker cannot dead-letter {reason!r}")

    def peek(self, queue: str) -> Optional[Delivery]:
        """The oldest message waiting in ``queue`` without taking it (``None``: empty or
        unknown). For the monitor's oldest-queued age; must not scan the queue."""
        return None

    def flush(self, timeout: Optional[float] = None) -> int:
        """Wait until published messages are delivered; returns how many are still pending."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; flushes first."""


# --------------------------------------------------------------------------- backend side


@dataclass(frozen=True)
class ErrorInfo:
    """A task's exception, as it travels: type name, message, args and traceback."""

    type: str
    message: str
    args: Any = ()
    traceback: Optional[str] = None


@dataclass(frozen=True)
class StateChange:
    """One state change of one task. ``None`` fields leave the stored value as it is."""

    task_id: str
    state: str
    timestamp: float
    worker: Optional[str] = None
    name: Optional[str] = None
    queue: Optional[str] = None
    #: The encoded return value (``envelope.pack``), for ``success``.
    result: Optional[bytes] = None
    error: Optional[ErrorInfo] = None
    retries: Optional[int] = None
    #: When the task is due (``scheduled`` / ``retrying``).
    eta: Optional[float] = None
    #: The message was dead-lettered: counted in :attr:`TaskTotals.dead_lettered` even
    #: when the change itself is refused (the task was already ready).
    dead_lettered: bool = False
    #: The change records that the broker refused a copy of the task's message: it
    #: applies only while no other copy can still run the task, so not to a task that
    #: is ``scheduled`` or ``retrying`` (its schedule entry publishes it again) or
    #: ``processing`` (another copy reached a worker). Decided in the backend's atomic
    #: step, so a scheduler releasing the entry meanwhile cannot slip in between.
    undelivered: bool = False


@dataclass(frozen=True)
class TaskRecord:
    """What a backend knows of one task."""

    task_id: str
    state: str
    name: Optional[str] = None
    queue: Optional[str] = None
    result: Optional[bytes] = None
    error: Optional[ErrorInfo] = None
    retries: int = 0
    worker: Optional[str] = None
    eta: Optional[float] = None
    #: The process incarnation that holds the ``processing`` claim.
    instance: Optional[str] = None
    #: ``(state, timestamp, worker)`` for every state change, oldest first.
    history: tuple[tuple[str, float, Optional[str]], ...] = ()

    @property
    def updated(self) -> float:
        return self.history[-1][1] if self.history else 0.0

    def timestamp(self, state: str) -> Optional[float]:
        """When the task last entered ``state``."""
        for entry_state, ts, _ in reversed(self.history):
            if entry_state == state:
                return ts
        return None


@dataclass(frozen=True)
class Progress:
    """The latest custom state and ``meta`` a running task reported (``update_state``)."""

    task_id: str
    #: The attempt it belongs to (``TaskRecord.retries`` while that attempt runs).
    retries: int
    state: str
    #: The packed ``meta`` dict (``envelope.pack``), or ``None``.
    meta: Optional[bytes]
    timestamp: float


@dataclass(frozen=True)
class Claim:
    """A worker's request to start running one delivery of a task."""

    task_id: str
    name: str
    queue: str
    retries: int
    #: The claiming worker's process incarnation (unique per start).
    instance: str
    worker: str
    timestamp: float
    #: When the task was first submitted, recorded as its ``queued`` time.
    created: float = 0.0


#: Claim decisions.
RUN = "run"  # the claim is granted: the task is now ``processing`` by this worker
SKIP = "skip"  # already finished or superseded by a later attempt: the delivery is spent
REVOKED = "revoked"  # revoked before it ran: now recorded ``revoked``
#: Running on another live instance: the delivery is *not* spent. The claimant keeps it
#: outstanding (never reports it done) and claims it again later, so the task stays
#: recoverable until its outcome is stored: ``SKIP`` once it is ready, ``RUN`` once its
#: holder is found dead.
BUSY = "busy"


@dataclass(frozen=True)
class ScheduledMessage:
    """A message waiting in the schedule until ``due`` (countdown, eta, retry)."""

    task_id: str
    due: float
    message: Message


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's self-report, written with every heartbeat."""

    worker: str
    instance: str
    hostname: str = ""
    pid: int = 0
    queues: tuple[str, ...] = ()
    concurrency: int = 0
    pool: str = ""
    started: float = 0.0
    #: When the backend last heard from the worker, on the backend's clock: the backend
    #: sets it on receipt (what the worker sends is ignored), so clocks of worker hosts
    #: are never compared.
    last_heartbeat: float = 0.0
    tasks_done: int = 0
    tasks_failed: int = 0
    active: int = 0
    #: ``running`` while serving; ``stopped`` after a clean shutdown.
    state: str = "running"
    healthy: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    #: The worker's previous heartbeat failed (it could not reach the backend): sent with
    #: the first one that succeeds again, so the backend knows an outage just ended.
    resumed: bool = False
    #: Set by :meth:`ResultBackend.workers`: seconds the backend has not heard from the
    #: worker, on its own clock, leaving out any time it heard from no worker at all (its
    #: own outage): see :func:`yadtq.transports.records.silence`.
    silent: float = 0.0


@dataclass(frozen=True)
class WorkerFailure:
    """A worker that stopped heartbeating without shutting down cleanly."""

    worker: str
    instance: str
    last_heartbeat: float
    detected: float


#: How many of the latest successes and failures a backend keeps for :meth:`ResultBackend.snapshot`.
RECENT_LIMIT = 50
#: Longest error message a task summary carries.
SUMMARY_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class TaskTotals:
    """Cumulative counts of state changes, kept as counters (never by counting tasks)."""

    succeeded: int = 0
    failed: int = 0
    #: Attempts that failed and were scheduled again.
    retried: int = 0
    revoked: int = 0
    #: Messages that could never run (see :attr:`StateChange.dead_lettered`).
    dead_lettered: int = 0


@dataclass(frozen=True)
class TaskSummary:
    """One task as the monitor lists it."""

    task_id: str
    name: Optional[str] = None
    worker: Optional[str] = None
    queue: Optional[str] = None
    #: When the task entered the state it is listed under (started for ``processing``,
    #: finished for ``success``/``failed``), or when it is due (scheduled).
    timestamp: float = 0.0
    #: Seconds the last attempt ran (recent successes and failures, when known).
    runtime: Optional[float] = None
    error_type: Optional[str] = None
    #: The error message, at most ``SUMMARY_MESSAGE_LIMIT`` characters.
    error_message: Optional[str] = None
    #: Why a scheduled task waits, when a limit holds it (e.g. ``rate_limit 60/m``).
    reason: Optional[str] = None


@dataclass(frozen=True)
class BackendSnapshot:
    """What a backend knows of the cluster's tasks right now, read from counters and
    indexes it keeps: its cost does not grow with the number of stored results."""

    #: Tasks ``processing`` now.
    processing: int = 0
    #: Tasks ``retrying`` now (waiting in the schedule for their next attempt).
    retrying: int = 0
    #: Messages waiting in the schedule: countdown/eta tasks and retries alike.
    scheduled: int = 0
    totals: TaskTotals = field(default_factory=TaskTotals)
    #: Tasks in progress, longest running first.
    processing_tasks: tuple[TaskSummary, ...] = ()
    #: Tasks waiting to retry, oldest failure first.
    retrying_tasks: tuple[TaskSummary, ...] = ()
    #: Scheduled messages, soonest due first (``timestamp`` is when due).
    scheduled_tasks: tuple[TaskSummary, ...] = ()
    #: Latest successes and failures, newest first.
    recent_successes: tuple[TaskSummary, ...] = ()
    recent_failures: tuple[TaskSummary, ...] = ()


class ResultBackend(ABC):
    """Task state, results, the schedule, worker heartbeats and dedupe keys.

    Each method is one atomic storage step; methods taking sequences handle a
    whole batch in one round trip. Thread-safe.
    """

    scheme: str = ""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    # -- states and results
    @abstractmethod
    def record(self, changes: Sequence[StateChange],
               scheduled: Sequence[ScheduledMessage] = ()) -> None:
        """Store a batch of state changes (and messages to schedule) in one atomic step,
        and wake anyone waiting on a ready state.

        A change never moves a task out of a ready state (success, failed, revoked).
        Scheduling a retry and recording ``retrying`` together means a crash can
        never leave one without the other.
        """

    @abstractmethod
    def claim(self, claims: Sequence[Claim], alive_after: Optional[float] = None) -> list[str]:
        """Decide, atomically per task, whether each delivery may run; one decision each.

        ``RUN`` (now ``processing`` by the claimant) unless the task is ready or has
        moved on to a later attempt than ``claim.retries`` (``SKIP``), is ``processing``
        by another live instance (``BUSY``: the claimant keeps the delivery and claims
        again later; also when the task was revoked since it started, because a task
        that started runs to its stored outcome), or was revoked (``REVOKED``,
        recorded). A claim by the instance already holding the task is granted again,
        so a claim retried after a lost reply is not lost; the worker itself never
        claims a task its pool is running.
        This is what makes a redelivered task run at most once.

        An instance is live unless the backend, on its own clock, has heard no
        heartbeat from it for ``settings.worker_unresponsive_after`` seconds while it
        kept hearing other workers (:func:`yadtq.transports.records.instance_alive`):
        neither clock skew between worker hosts nor an outage of the backend itself
        makes a live worker look dead. ``alive_after`` is ignored (callers written
        before liveness moved to the backend's clock pass it).
        """

    @abstractmethod
    def get(self, task_ids: Sequence[str]) -> list[Optional[TaskRecord]]:
        """The records of ``task_ids`` (``None`` for unknown or expired ones)."""

    @abstractmethod
    def wait(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """Block until the task is ready, woken by notification; ``None`` on timeout."""

    async def wait_async(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """:meth:`wait` for asyncio callers, without blocking the event loop.

        This default hands the blocking :meth:`wait` (still woken by notification) to a
        thread of its own, in slices of :data:`ASYNC_WAIT_SLICE` seconds so that a
        cancelled caller frees its thread soon; a backend with an asyncio client
        overrides it (Redis).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Optional[TaskRecord]] = loop.create_future()
        deadline = None if timeout is None else time.monotonic() + timeout

        def deliver(outcome: Any, failed: bool) -> None:
            if not future.done():
                if failed:
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

        def hand_off() -> None:
            outcome: Any = None
            failed = False
            try:
                while not future.done():  # done: the caller was cancelled
                    remaining = None if deadline is None else deadline - time.monotonic()
                    piece = ASYNC_WAIT_SLICE if remaining is None else max(
                        0.0, min(remaining, ASYNC_WAIT_SLICE))
                    outcome = self.wait(task_id, piece)
                    if outcome is not None or (remaining is not None and remaining <= piece):
                        break
            except BaseException as exc:  # handed over to the awaiting coroutine
                outcome, failed = exc, True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(deliver, outcome, failed)

        threading.Thread(target=hand_off, name=f"yadtq-wait-{task_id[:8]}", daemon=True).start()
        return await future

    @abstractmethod
    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete what is stored about these tasks."""

    @abstractmethod
    def revoke(self, task_ids: Sequence[str], timestamp: float) -> None:
        """Mark tasks revoked: one that has not started will never start."""

    # -- progress of running tasks
    def record_progress(self, updates: Sequence[Progress]) -> None:
        """Store the latest progress of each task (replacing its earlier one), for as long
        as results are kept. The worker throttles updates to about one per second per task.

        This default stores nothing (progress then stays invisible); the bundled
        backends implement it.
        """
        logger.debug("%s stores no progress", type(self).__name__)

    def get_progress(self, task_ids: Sequence[str]) -> list[Optional[Progress]]:
        """The latest progress stored for each task (``None``: none reported)."""
        return [None] * len(task_ids)

    # -- schedule
    @abstractmethod
    def claim_due(self, now: Optional[float], limit: int, lease: float) -> list[ScheduledMessage]:
        """Take up to ``limit`` messages due at ``now`` for ``lease`` seconds.

        ``now`` is ``None`` for the backend's own clock, which is what workers pass, so
        the clocks of worker hosts never decide what is due or when a lease ends; a
        number is for tests and tools.
        Each due message goes to exactly one caller; one not released within the
        lease (its claimant died) becomes claimable again, so none is lost.
        """

    @abstractmethod
    def release_due(self, entries: Sequence[ScheduledMessage]) -> None:
        """Drop claimed messages from the schedule once they are published."""

    def next_due(self) -> Optional[float]:
        """When the earliest scheduled message is due (``None``: nothing scheduled)."""
        return None

    # -- workers
    @abstractmethod
    def heartbeat(self, info: WorkerInfo) -> None:
        """Record a worker's liveness and counters, stamped with the backend's clock.

        The same step prunes (a bounded number of) workers not heard from for
        ``settings.worker_retention`` seconds from the registry.
        """

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """Every known worker's latest report, with ``last_heartbeat`` and ``silent``
        on the backend's clock."""

    def time(self) -> float:
        """The backend's clock (seconds since the epoch)."""
        return time.time()

    @abstractmethod
    def record_failure(self, failure: WorkerFailure) -> None:
        """Append to the worker failure history (capped; at most one entry per instance)."""

    @abstractmethod
    def failures(self, limit: int = 100) -> list[WorkerFailure]:
        """The worker failure history, newest first."""

    # -- monitoring
    @abstractmethod
    def snapshot(self, limit: int = RECENT_LIMIT) -> BackendSnapshot:
        """Counts, totals and up to ``limit`` tasks of each list (recent ones: at most
        ``RECENT_LIMIT``), from indexes and counters kept in the same atomic step as the
        state changes they reflect; never by scanning the stored tasks."""

    # -- dedupe
    @abstractmethod
    def claim_dedupe(self, key: str, task_id: str, ttl: float) -> str:
        """Atomically: the id of an earlier task under ``key`` that is not failed or
        revoked, else store ``task_id`` under ``key`` for ``ttl`` seconds and return it."""

    @abstractmethod
    def release_dedupe(self, key: str, task_id: str) -> None:
        """Atomically: drop ``key`` if it still holds ``task_id`` (a task that was never
        sent must not stand for identical ones)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# --------------------------------------------------------------------------- canvas storage
# Groups and chords (DESIGN.md section 10). Kept apart from ResultBackend so a
# third-party backend sees what these steps need; ``memory.py`` is the reference.

#: Chord states in :class:`GroupInfo`.
CHORD_OPEN, CHORD_FIRED, CHORD_FAILED = "open", "fired", "failed"


@dataclass(frozen=True)
class GroupSpec:
    """A group to store before any of its members is sent.

    ``callback`` makes it a chord: the message of the chord's callback, put in the
    schedule (due at once) by the step that records the last member's success.
    """

    group_id: str
    #: The task id whose result stands for each member, in submission order.
    member_ids: tuple[str, ...]
    created: float
    callback: Optional[ScheduledMessage] = None


@dataclass(frozen=True)
class ChordJoin:
    """Count a chord member that just finished: by its stored state, in the same step."""

    chord_id: str
    #: The member's position in the chord (counted once, however often it is recorded).
    index: int
    #: The task whose stored state decides: ``success`` counts, ``failed`` fails the chord.
    task_id: str


@dataclass(frozen=True)
class GroupInfo:
    """A stored group and, for a chord, its progress."""

    group_id: str
    member_ids: tuple[str, ...]
    created: float
    #: The chord's callback task id (``None`` for a plain group).
    callback_id: Optional[str] = None
    #: Members counted successful so far (chords only).
    done: int = 0
    #: ``open``, ``fired`` (callback scheduled) or ``failed`` (chords only).
    state: Optional[str] = None
    #: The member whose failure failed the chord.
    failed_member: Optional[str] = None

    @property
    def size(self) -> int:
        return len(self.member_ids)


class CanvasBackend(ABC):
    """The storage steps of groups and chords; each one atomic."""

    @abstractmethod
    def save_groups(self, groups: Sequence[GroupSpec]) -> None:
        """Store groups (member ids, and for chords the callback message and a zero count)."""

    @abstractmethod
    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        """:meth:`ResultBackend.record` and chord counting in ONE atomic step.

        After the changes are applied, each join looks at its task's stored state: a
        success adds the member's index to the chord's set of done members (so a member
        recorded twice counts once); when the set is full, the chord is ``fired`` and its
        callback goes into the schedule, due now, exactly once. A failed or revoked member
        makes the chord ``failed`` (the callback never runs).
        """

    @abstractmethod
    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        """The stored group, or ``None`` (unknown or expired)."""

    @abstractmethod
    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        """Chords still waiting for members, oldest first (for the monitor)."""


# --------------------------------------------------------------------------- flow control
# Rate limits (DESIGN.md section 12; specs in yadtq/flow.py). Kept apart from
# ResultBackend so a third-party backend sees what the step needs; ``memory.py``
# is the reference.


@dataclass(frozen=True)
class RateRequest:
    """A worker asks to start one attempt of a rate-limited task."""

    #: The task name: the limit is shared by every start of this name.
    name: str
    #: The attempt (``<task id>:<retries>``): asking again for one attempt is answered the
    #: same (its start or its reservation is kept), so a redelivery takes no second slot.
    attempt: str
    count: int
    period: float
    #: The message to put in the schedule if the attempt must wait.
    waiting: ScheduledMessage


class LimitsBackend(ABC):
    """The flow control step of the backend; atomic."""

    @abstractmethod
    def admit_rate(self, requests: Sequence[RateRequest]) -> list[Optional[float]]:
        """Decide each request, in order, in ONE atomic step on the backend's clock.

        Starts (and reservations) are kept per name for ``period`` seconds. A request
        whose attempt has a start at or before now is answered ``None`` (start it). Else
        its start time is ``flow.next_start`` of the name's starts: ``None`` if that is
        now (the start is recorded), else the time itself, which is recorded as the
        attempt's reservation while ``waiting`` goes into the schedule, due then, in the
        same step. An attempt already reserved for later gets its reservation again.
        """


# --------------------------------------------------------------------------- discovery


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ConfigurationError(f"not a transport URL: {url!r}")
    return scheme


def _load(group: str, url: str) -> type[Any]:
    scheme = _scheme(url)
    found = [ep for ep in entry_points(group=group) if ep.name == scheme]
    if not found:
        known = sorted({ep.name for ep in entry_points(group=group)})
        role = "broker" if group == BROKER_GROUP else "backend"
        raise ConfigurationError(
            f"no {role} transport for {scheme}:// (known: {', '.join(known) or 'none'})"
        )
    try:
        cls = found[0].load()
    except ImportError as exc:
        raise ConfigurationError(f"cannot load the {scheme}:// transport: {exc}") from exc
    return cls  # type: ignore[no-any-return]


def create_broker(url: str, settings: Settings) -> Broker:
    """The broker for ``url``, looked up by scheme in the ``yadtq.brokers`` entry points."""
    broker = _load(BROKER_GROUP, url)(url, settings)
    assert isinstance(broker, Broker)
    return broker


def create_backend(url: str, settings: Settings) -> ResultBackend:
    """The backend for ``url``, looked up by scheme in the ``yadtq.backends`` entry points."""
    backend = _load(BACKEND_GROUP, url)(url, settings)
    assert isinstance(backend, ResultBackend)
    return backend


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Split ``items`` into lists of at most ``size``."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
