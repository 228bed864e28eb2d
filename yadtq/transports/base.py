"""The transport contract: :class:`Broker`, :class:`Consumer` and :class:`ResultBackend`.

Everything is batch-first. A consumer hands the worker a batch of deliveries and
takes acknowledgements in batches; a backend records the state changes of a
batch in one round trip. ``memory.py`` is the reference implementation every
other transport must match (``tests/contract`` runs one suite over all of them).

Transports are found by URL scheme through the ``yadtq.brokers`` and
``yadtq.backends`` entry points, so a third-party package can add one
(``discovery.py``). The contract's data live in ``types.py`` and ``deliveries.py``,
and ``wait_async``'s default in ``async_wait.py``; this module re-exports them.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from ..exceptions import BrokerUnavailable, ConfigurationError
from .async_wait import ASYNC_WAIT_SLICE, wait_in_thread
from .deliveries import DeadLetter, Delivery, DeliveryErrorHook, DrainCallback
from .discovery import BACKEND_GROUP, BROKER_GROUP, load_transport
from .types import (  # the contract's data, re-exported
    BUSY,
    CONTROL_POOL_GROW,
    CONTROL_POOL_SHRINK,
    CONTROL_SHUTDOWN,
    CONTROL_TERMINATE,
    RECENT_LIMIT,
    REVOKED,
    RUN,
    SKIP,
    SUMMARY_MESSAGE_LIMIT,
    WORKER_RUNNING,
    WORKER_STOPPED,
    BackendSnapshot,
    Claim,
    ErrorInfo,
    FailedMessage,
    Message,
    Progress,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    TaskSummary,
    TaskTotals,
    WorkerFailure,
    WorkerInfo,
    silent_running,
)

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "ASYNC_WAIT_SLICE", "BACKEND_GROUP", "BROKER_GROUP", "BUSY", "CONTROL_POOL_GROW",
    "CONTROL_POOL_SHRINK", "CONTROL_SHUTDOWN", "CONTROL_TERMINATE", "RECENT_LIMIT", "REVOKED",
    "RUN", "SKIP", "SUMMARY_MESSAGE_LIMIT", "WORKER_RUNNING", "WORKER_STOPPED", "BackendSnapshot",
    "Broker", "Claim", "Consumer",
    "DeadLetter", "Delivery", "DeliveryErrorHook", "DrainCallback", "ErrorInfo", "FailedMessage",
    "Message", "Progress", "ResultBackend", "ScheduledMessage", "StateChange", "TaskRecord",
    "TaskSummary", "TaskTotals", "WorkerFailure", "WorkerInfo", "create_backend", "create_broker",
    "silent_running",
]



# --------------------------------------------------------------------------- broker side


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

    def revoking(self, delivery: Delivery) -> bool:
        """Whether ``delivery``'s partition is being revoked right now (while the consumer
        calls its ``on_drain``): a drain waits for such deliveries only. Any thread."""
        return False


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

    def publish_plain(self, queue: str, rows: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
        """:meth:`publish` for messages of one queue at the default priority, each given as
        ``(body, key, headers)``: the path of ``.delay()`` and bulk sends, which transports
        may serve without building a :class:`Message` per task.

        Raises:
            BrokerUnavailable: the transport refused the messages.
        """
        self.publish([Message(queue, body, key, headers) for body, key, headers in rows])

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

    def depth_by_priority(self, queue: str) -> Optional[dict[str, int]]:
        """Messages waiting in ``queue`` per priority, for the monitor: level (``"7"``), or
        lane of levels on Kafka (``"7-9"``) -> count, only those with any waiting;
        ``None`` if unknown."""
        return None

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        """The most recent dead-lettered messages, newest last (for tests and the monitor)."""
        return []

    # -- dead letters, for operators (``yadtq dlq``, the dashboard)
    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, oldest first, each with its id and reason.

        Raises:
            ConfigurationError: this broker keeps no dead letters it can list.
        """
        raise ConfigurationError(f"the {self.scheme or type(self).__name__} broker cannot list dead letters")

    def requeue_dead_letters(self, ids: Optional[Sequence[str]] = None) -> list[DeadLetter]:
        """Publish dead letters (``ids``, or every one if ``None``) to their queues again and
        take them out of the dead-letter queue; returns those requeued.

        A dead letter is published before it leaves the dead-letter queue: a crash in between
        leaves it in both, never in neither.
        """
        raise ConfigurationError(
            f"the {self.scheme or type(self).__name__} broker cannot requeue dead letters")

    def purge_dead_letters(self) -> int:
        """Drop every dead letter; returns how many."""
        raise ConfigurationError(f"the {self.scheme or type(self).__name__} broker cannot purge dead letters")

    def dead_letter_message(self, message: Message, reason: str) -> None:
        """Put a message that was never delivered and never can be (e.g. a scheduled one
        the broker refuses) in the dead-letter queue, with ``reason``.

        Raises:
            BrokerUnavailable: not stored (the default: this broker keeps no dead letters).
        """
        raise BrokerUnavailable(f"the {self.scheme}:// broker cannot dead-letter {reason!r}")

    def queues_with_tasks(self) -> list[str]:
        """The queues of the app's namespace that hold messages not yet done, by name, so
        the monitor shows a queue no worker consumes. Bounded in cost (Kafka reads a
        limited number of queues' lag, and at most every few seconds); empty if unknown.

        Raises:
            BrokerUnavailable: the broker did not answer.
        """
        return []

    def leases(self) -> dict[str, float]:
        """Task id -> when the lease of its message runs out (epoch seconds), for a broker
        that leases messages to consumers (SQLite); empty for the others. A task whose
        worker died shows ``processing`` until then (``inspect active`` shows it).

        Raises:
            BrokerUnavailable: the broker did not answer.
        """
        return {}

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

    def states(self, task_ids: Sequence[str]) -> list[Optional[str]]:
        """The current state of each task (``None`` for unknown or expired ones).

        A worker asks this for every task it runs a few times a second (to stop those
        revoked with ``terminate=True``), so backends answer it without building whole
        records; this default reads them with :meth:`get`.
        """
        return [None if r is None else r.state for r in self.get(task_ids)]

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
        return await wait_in_thread(self.wait, task_id, timeout)

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

    def silent_workers(self, after: float) -> list[WorkerInfo]:
        """The running workers (:data:`WORKER_RUNNING`) silent for more than ``after``
        seconds, as :meth:`workers` reports them: what every heartbeat looks for.

        The registry keeps stopped workers for ``worker_retention``; a backend should
        answer without reading their reports, so a heartbeat's cost follows the running
        fleet, not its restarts. This default reads them all.
        """
        return silent_running(self.workers(), after)

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

    # -- operator support: failed messages kept for retry, and the control channel.
    # Optional: a backend without them keeps nothing, and ``yadtq retry``/``control`` say so.
    def keep_failed(self, failed: Sequence[FailedMessage]) -> None:  # noqa: B027 - optional
        """Keep the messages of tasks that finally failed, for ``result_expires`` seconds."""

    def failed_messages(self, limit: int = 1000) -> list[FailedMessage]:
        """Kept messages of failed tasks, newest first (their bodies included)."""
        return []

    def take_failed(self, task_ids: Sequence[str]) -> list[Optional[FailedMessage]]:
        """Atomically remove and return the kept messages of ``task_ids`` (``None``: none
        kept), so that two operators retrying at once run each task again only once."""
        return [None for _ in task_ids]

    def send_control(self, workers: Sequence[str], command: Mapping[str, Any]) -> None:
        """Queue a control command (``{"op": ..., ...}``) for each named worker.

        Raises:
            ConfigurationError: this backend has no control channel.
        """
        raise ConfigurationError(f"the {self.scheme or type(self).__name__} backend has no control channel")

    def take_control(self, worker: str) -> list[dict[str, Any]]:
        """Remove and return the commands queued for ``worker``, oldest first."""
        return []
    @abstractmethod
    def release_dedupe(self, key: str, task_id: str) -> None:
        """Atomically: drop ``key`` if it still holds ``task_id`` (a task that was never
        sent must not stand for identical ones)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# --------------------------------------------------------------------------- discovery


def create_broker(url: str, settings: Settings) -> Broker:
    """The broker for ``url``, looked up by scheme in the ``yadtq.brokers`` entry points."""
    broker = load_transport(BROKER_GROUP, url)(url, settings)
    assert isinstance(broker, Broker)
    return broker


def create_backend(url: str, settings: Settings) -> ResultBackend:
    """The backend for ``url``, looked up by scheme in the ``yadtq.backends`` entry points."""
    backend = load_transport(BACKEND_GROUP, url)(url, settings)
    assert isinstance(backend, ResultBackend)
    return backend

