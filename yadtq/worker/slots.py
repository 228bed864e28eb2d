"""Concurrency-limit admission, the worker's side of ``concurrency_limit`` (DESIGN.md
section 12): a slot is asked for right before the claim and given back once the
outcome is stored (or the claim says the task will not run here).

A task over its limit is kept by the backend's atomic ``acquire_slots`` step and
recorded ``scheduled`` here, its delivery reported done: it never blocks its
partition and never waits in this worker's memory. When a slot frees (a release, or
a holder found dead by ``sweep_slots``, which every worker runs each heartbeat), the
same step puts the first waiting task's message into the schedule, due now.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Callable, Optional

from .. import states
from ..concurrency import display_value, key_value, slot_key, waiting_reason
from ..flow import HEADER_WAITING
from ..transports.base import Message, ScheduledMessage, StateChange
from ..transports.slots_store import ConcurrencyBackend, SlotRequest

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..envelope import Envelope
    from ..task import Task
    from ..transports.base import Delivery
    from .attempts import Pending

logger = logging.getLogger(__name__)

_warned: set[str] = set()


def limited(app: YADTQ, name: str) -> Optional[Task[..., object]]:
    """Task ``name`` if it has a concurrency limit here."""
    task = app.tasks.get(name)
    if task is None or getattr(task.options, "concurrency_limit", None) is None:
        return None
    return task


def has_limits(app: YADTQ) -> bool:
    """Whether any task registered here has a concurrency limit."""
    return any(limited(app, name) is not None for name in app.tasks)


def backend_of(app: YADTQ) -> Optional[ConcurrencyBackend]:
    backend = app.backend
    if isinstance(backend, ConcurrencyBackend):
        return backend
    if backend.scheme not in _warned:
        _warned.add(backend.scheme)
        logger.warning("backend %s has no concurrency slots; running concurrency-limited tasks "
                       "unlimited", backend.scheme)
    return None


def key_of(task: Task[..., object], envelope: Envelope) -> str:
    """The limit key of one call (``concurrency.slot_key``). A key callable that raises is
    logged and the call is limited under the task's own key (``""``)."""
    options = task.options
    try:
        value = key_value(task.fn, options.concurrency_key, envelope.args, envelope.kwargs,
                          options.bind)
    except Exception as exc:  # the user's key function, or arguments that do not fit
        logger.error("task %s[%s]: cannot compute its concurrency_key (%s: %s); limited under "
                     "the task's own key", envelope.task, envelope.id, type(exc).__name__, exc,
                     extra={"task_id": envelope.id, "task": envelope.task})
        value = ""
    return value


def admit(app: YADTQ, instance: str, pending: Sequence[Pending]
          ) -> tuple[list[Pending], list[StateChange], list[Delivery], int]:
    """Split ``pending`` into those to claim now and those now waiting for a slot:
    (to claim, their ``scheduled`` changes, their deliveries to report done, how many
    waiting messages the step put into the schedule)."""
    asked: list[tuple[Pending, SlotRequest, str]] = []
    go: list[Pending] = []
    for entry in pending:
        task = limited(app, entry.envelope.task)
        if task is None:
            go.append(entry)
            continue
        env, d = entry.envelope, entry.delivery
        limit = int(task.options.concurrency_limit or 1)
        value = key_of(task, env)
        reason = waiting_reason(limit, task.options.concurrency_key, display_value(value))
        headers = {**d.headers, HEADER_WAITING: reason.encode()}
        waiting = ScheduledMessage(env.id, 0.0, Message(d.queue, d.body, d.key, headers))
        asked.append((entry, SlotRequest(slot_key(env.task, value), env.task, display_value(value),
                                         limit, env.id, env.retries, instance, waiting), reason))
    if not asked:
        return go, [], [], 0
    backend = backend_of(app)
    if backend is None:
        return list(pending), [], [], 0
    answers, promoted = backend.acquire_slots([r for _, r, _ in asked])
    changes: list[StateChange] = []
    spent: list[Delivery] = []
    now = app.now()
    for (entry, _, reason), run in zip(asked, answers):
        if run:
            go.append(entry)
            continue
        env = entry.envelope
        logger.info("task %s[%s] waits for a slot: %s", env.task, env.id, reason,
                    extra={"task_id": env.id, "task": env.task})
        changes.append(StateChange(env.id, states.SCHEDULED, now, name=env.task, queue=env.queue))
        spent.extend(entry.deliveries())
    return go, changes, spent, promoted


def release(app: YADTQ, envelopes: Iterable[Envelope]) -> int:
    """Give back the slots of these attempts (outcome stored, or not run after all); the
    number of waiting messages put into the schedule."""
    slots = []
    for env in envelopes:
        task = limited(app, env.task)
        if task is not None:
            slots.append((slot_key(env.task, key_of(task, env)), env.id, env.retries))
    if not slots:
        return 0
    backend = backend_of(app)
    return backend.release_slots(slots) if backend is not None else 0


def sweep_and_wake(app: YADTQ, wake: Callable[[], None]) -> None:
    """Free the slots of holders found dead (or whose release was lost) and hand them on;
    ``wake`` the scheduler if that put waiting tasks into the schedule."""
    backend = backend_of(app)
    if backend is not None and backend.sweep_slots():
        wake()
