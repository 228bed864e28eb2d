"""The rules for changing a task record, shared by transports that store whole records.

The Redis backend implements the same rules in Lua (``lua/*.lua``); the contract
tests hold every transport to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional

from ..envelope import HEADER_TASK
from ..flow import HEADER_WAITING
from ..states import (
    FAILED,
    PROCESSING,
    QUEUED,
    READY_STATES,
    RETRYING,
    REVOKED,
    SCHEDULED,
    SUCCESS,
)
from .base import (
    BUSY,
    RUN,
    SKIP,
    SUMMARY_MESSAGE_LIMIT,
    Claim,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    TaskSummary,
    TaskTotals,
)
from .base import REVOKED as DECISION_REVOKED

#: The :class:`TaskTotals` counter a task entering a state adds one to.
TOTAL_OF_STATE = {SUCCESS: "succeeded", FAILED: "failed", RETRYING: "retried", REVOKED: "revoked"}
DEAD_LETTERED = "dead_lettered"
#: States in which a refused copy of a task's message does not fail it (see
#: :attr:`StateChange.undelivered`): the schedule holds it, or a worker runs it.
STILL_DELIVERABLE = frozenset({SCHEDULED, RETRYING, PROCESSING})


def apply_change(current: Optional[TaskRecord], change: StateChange) -> Optional[TaskRecord]:
    """``current`` with ``change`` applied, or ``None`` when the change is refused.

    A ready task (success, failed, revoked) never changes again, and an
    ``undelivered`` change never touches a task another copy can still run.
    """
    if current is not None and (current.state in READY_STATES or (
            change.undelivered and current.state in STILL_DELIVERABLE)):
        return None
    base = current or TaskRecord(task_id=change.task_id, state=change.state)
    return TaskRecord(
        task_id=change.task_id,
        state=change.state,
        name=change.name if change.name is not None else base.name,
        queue=change.queue if change.queue is not None else base.queue,
        result=change.result if change.result is not None else base.result,
        error=change.error if change.error is not None else base.error,
        retries=change.retries if change.retries is not None else base.retries,
        worker=change.worker if change.worker is not None else base.worker,
        eta=change.eta if change.eta is not None else base.eta,
        instance=base.instance,
        history=(*base.history, (change.state, change.timestamp, change.worker)),
    )


def decide_claim(
    current: Optional[TaskRecord],
    claim: Claim,
    *,
    revoked: bool,
    instance_alive: Callable[[str], bool],
) -> tuple[str, Optional[TaskRecord]]:
    """The decision on one claim and the record to store (``None``: store nothing).

    In order: a ready task is ``SKIP``, and so is a superseded attempt (the task moved
    on to a later one); a task ``processing`` by another live instance is ``BUSY``,
    even when revoked meanwhile (a task that started runs to its stored outcome, which
    its holder records); a revoked task is recorded ``REVOKED`` (it never starts);
    anything else, including a claim by the instance already holding the task, is
    ``RUN``.
    """
    if current is not None:
        if current.state in READY_STATES or current.retries > claim.retries:
            return SKIP, None
        if (current.state == PROCESSING and current.instance
                and current.instance != claim.instance and instance_alive(current.instance)):
            return BUSY, None
    if revoked:
        change = StateChange(claim.task_id, REVOKED, claim.timestamp, worker=claim.worker,
                             name=claim.name, queue=claim.queue)
        return DECISION_REVOKED, apply_change(current, change)
    history = current.history if current is not None else (
        ((QUEUED, claim.created, None),) if claim.created else ()
    )
    # Built directly: ``dataclasses.replace`` costs twice as much, once per claimed task.
    record = TaskRecord(
        task_id=claim.task_id,
        state=PROCESSING,
        name=claim.name,
        queue=claim.queue,
        result=current.result if current is not None else None,
        error=current.error if current is not None else None,
        retries=claim.retries,
        worker=claim.worker,
        eta=current.eta if current is not None else None,
        instance=claim.instance,
        history=(*history, (PROCESSING, claim.timestamp, claim.worker)),
    )
    return RUN, record


@dataclass(frozen=True)
class Watch:
    """What a backend knows of its own hearing of heartbeats, all on its own clock."""

    #: The backend's clock now.
    now: float
    #: Since when it has heard heartbeats without an outage: a heartbeat from a worker
    #: that could not reach the backend before (:attr:`WorkerInfo.resumed`) starts a new
    #: watch, because every worker's silence until then was the outage's, not its own.
    since: float = 0.0
    #: When it last heard any heartbeat.
    last: float = 0.0


#: While no heartbeat from any worker arrived for this many heartbeat intervals (e.g.
#: right after the backend came back, before anyone beat again), silence proves nothing.
OUTAGE_INTERVALS = 2.0
#: Most workers a heartbeat prunes from the registry (bounded cost per heartbeat).
PRUNE_BATCH = 100


def watch_after_beat(watch: Watch, resumed: bool) -> Watch:
    """The watch once a heartbeat arrived at ``watch.now``; ``resumed``: its worker could
    not reach the backend before (an outage ended), so a new watch starts."""
    since = watch.now if resumed or not watch.last else watch.since
    return Watch(watch.now, since, watch.now)


def silence(seen: float, watch: Watch) -> float:
    """Seconds a worker last heard at ``seen`` counts as silent: only time within the
    current watch counts, so right after an outage every worker gets a full
    ``worker_unresponsive_after`` to be heard again before it can be judged dead."""
    return max(0.0, watch.now - max(seen, watch.since))


def instance_alive(seen: Optional[float], watch: Watch, window: float, interval: float) -> bool:
    """Whether an instance last heard at ``seen`` (``None``: not running, or unknown) may
    still be running a task it claimed.

    Alive unless silent (:func:`silence`) for more than ``window`` seconds; and while
    the backend is hearing from nobody (an outage that no heartbeat has ended yet)
    every running instance counts as alive, because silence then proves nothing.
    """
    if seen is None:
        return False
    if watch.now - watch.last > OUTAGE_INTERVALS * interval:
        return True
    return silence(seen, watch) <= window


def summarize(record: TaskRecord) -> TaskSummary:
    """How the monitor lists a task: since when it is in its state, and how its last
    attempt ended (runtime from its latest ``processing`` entry, error type and message)."""
    runtime = None
    if record.state in (SUCCESS, FAILED):
        started = record.timestamp(PROCESSING)
        if started is not None:
            runtime = max(0.0, record.updated - started)
    error = record.error
    return TaskSummary(
        task_id=record.task_id, name=record.name, worker=record.worker, queue=record.queue,
        timestamp=record.updated, runtime=runtime,
        error_type=error.type if error is not None else None,
        error_message=error.message[:SUMMARY_MESSAGE_LIMIT] if error is not None else None,
    )


def summarize_scheduled(entry: ScheduledMessage) -> TaskSummary:
    """A scheduled message as the monitor lists it (``timestamp``: when it is due)."""
    name = entry.message.headers.get(HEADER_TASK)
    reason = entry.message.headers.get(HEADER_WAITING)
    return TaskSummary(task_id=entry.task_id, name=name.decode(errors="replace") if name else None,
                       queue=entry.message.queue, timestamp=entry.due,
                       reason=reason.decode(errors="replace") if reason else None)


def totals_from(counts: Mapping[str, int]) -> TaskTotals:
    """:class:`TaskTotals` from counters named like its fields (missing ones are 0)."""
    names = (*TOTAL_OF_STATE.values(), DEAD_LETTERED)
    return TaskTotals(**{name: int(counts.get(name, 0)) for name in names})
