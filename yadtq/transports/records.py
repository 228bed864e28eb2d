"""The rules for changing a task record, shared by transports that store whole records.

The Redis backend implements the same rules in Lua (``lua/*.lua``); the contract
tests hold every transport to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Callable, Optional

from ..envelope import HEADER_TASK
from ..states import FAILED, PROCESSING, QUEUED, READY_STATES, RETRYING, REVOKED, SUCCESS
from .base import REVOKED as DECISION_REVOKED
from .base import (
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

#: The :class:`TaskTotals` counter a task entering a state adds one to.
TOTAL_OF_STATE = {SUCCESS: "succeeded", FAILED: "failed", RETRYING: "retried", REVOKED: "revoked"}
DEAD_LETTERED = "dead_lettered"


def apply_change(current: Optional[TaskRecord], change: StateChange) -> Optional[TaskRecord]:
    """``current`` with ``change`` applied, or ``None`` when the change is refused.

    A ready task (success, failed, revoked) never changes again.
    """
    if current is not None and current.state in READY_STATES:
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
    """The decision on one claim and the record to store (``None``: store nothing)."""
    if current is not None and current.state in READY_STATES:
        return SKIP, None
    if revoked:
        change = StateChange(claim.task_id, REVOKED, claim.timestamp, worker=claim.worker,
                             name=claim.name, queue=claim.queue)
        return DECISION_REVOKED, apply_change(current, change)
    if current is not None:
        if current.retries > claim.retries:
            return SKIP, None
        if (current.state == PROCESSING and current.instance
                and current.instance != claim.instance and instance_alive(current.instance)):
            return SKIP, None
    history = current.history if current is not None else (
        ((QUEUED, claim.created, None),) if claim.created else ()
    )
    base = current or TaskRecord(task_id=claim.task_id, state=QUEUED)
    record = replace(
        base,
        state=PROCESSING,
        name=claim.name,
        queue=claim.queue,
        retries=claim.retries,
        worker=claim.worker,
        instance=claim.instance,
        history=(*history, (PROCESSING, claim.timestamp, claim.worker)),
    )
    return RUN, record


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
    return TaskSummary(task_id=entry.task_id, name=name.decode(errors="replace") if name else None,
                       queue=entry.message.queue, timestamp=entry.due)


def totals_from(counts: Mapping[str, int]) -> TaskTotals:
    """:class:`TaskTotals` from counters named like its fields (missing ones are 0)."""
    names = (*TOTAL_OF_STATE.values(), DEAD_LETTERED)
    return TaskTotals(**{name: int(counts.get(name, 0)) for name in names})
