"""The data of the backend contract: state changes, task records, claims and their
decisions, worker reports and the monitor's snapshot (``base.py`` re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ..quick_init import quick_init


@dataclass(frozen=True)
class Message:
    """An encoded envelope addressed to a queue, ready to publish."""

    queue: str
    body: bytes
    key: Optional[bytes] = None
    headers: Mapping[str, bytes] = field(default_factory=dict)



@dataclass(frozen=True)
class ErrorInfo:
    """A task's exception, as it travels: type name, message, args and traceback."""

    type: str
    message: str
    args: Any = ()
    traceback: Optional[str] = None


@quick_init
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


@quick_init
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


@quick_init
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


#: :attr:`WorkerInfo.state` of a worker serving, and of one that shut down cleanly.
WORKER_RUNNING, WORKER_STOPPED = "running", "stopped"


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
    state: str = WORKER_RUNNING
    healthy: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    #: The worker's previous heartbeat failed (it could not reach the backend): sent with
    #: the first one that succeeds again, so the backend knows an outage just ended.
    resumed: bool = False
    #: Set by :meth:`ResultBackend.workers`: seconds the backend has not heard from the
    #: worker, on its own clock, leaving out any time it heard from no worker at all (its
    #: own outage): see :func:`yadtq.transports.records.silence`.
    silent: float = 0.0


def silent_running(reports: Sequence[WorkerInfo], after: float) -> list[WorkerInfo]:
    """The running workers among ``reports`` silent for more than ``after`` seconds."""
    return [w for w in reports if w.state == WORKER_RUNNING and w.silent > after]


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


@dataclass(frozen=True)
class FailedMessage:
    """The message of a task that finally failed, kept so that an operator can retry it."""

    task_id: str
    name: str
    #: When it failed (epoch seconds).
    failed: float
    body: bytes


#: Control commands a worker understands (``yadtq control``, ``yadtq revoke --terminate``).
CONTROL_SHUTDOWN = "shutdown"
CONTROL_POOL_GROW = "pool-grow"
CONTROL_POOL_SHRINK = "pool-shrink"
CONTROL_TERMINATE = "terminate"
