"""Concurrency slots (DESIGN.md section 12): what a backend implements, and the
reference decisions that ``memory_slots.py`` and the SQLite backend apply (the Redis
backend's ``slots.lua`` does the same).

Per limit key (``concurrency.slot_key``: task name and key value) the backend keeps:

- the **holders**: attempt (``<task id>:<retries>``) -> (acquirer instance, since). A
  holder is *live* while its attempt is not over (``attempt_over``) and either the
  instance that last acquired it or the instance running it (the task record's
  claim) is alive; a slot promoted to a waiting task (acquirer ``""``) is kept for
  ``PROMOTED_TTL`` seconds until that task comes back and acquires it;
- the **waiting** attempts, in arrival order, each with its message.

A step that finds the key full, or someone waiting, first drops the holders that
are not live (so a slot of a worker found dead frees itself, and so does one whose
release was lost in a crash right after the outcome was stored) and hands each
free slot to the first waiting attempt, whose message goes into the schedule due
now, in the same atomic step. A key with free slots and nobody waiting is taken
from without looking at its holders, so a step costs O(1) until the key is full.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..states import PROCESSING, READY_STATES
from .types import ScheduledMessage, TaskRecord

#: Seconds a slot handed to a waiting task stays reserved for it (its message goes
#: through the schedule and the broker before it acquires the slot).
PROMOTED_TTL = 60.0
#: Most keys with waiting tasks one ``sweep_slots`` call looks at.
SWEEP_BATCH = 100


@dataclass(frozen=True)
class SlotRequest:
    """A worker asks for a slot for one attempt, right before claiming it."""

    #: ``concurrency.slot_key(task name, key value)``.
    key: str
    name: str
    value: str
    limit: int
    task_id: str
    retries: int
    #: The asking worker's instance (``Identity.instance``).
    instance: str
    #: The message to keep while the attempt waits (its due is set when a slot frees).
    waiting: ScheduledMessage

    @property
    def attempt(self) -> str:
        return attempt_name(self.task_id, self.retries)


@dataclass(frozen=True)
class SlotHolder:
    """One taken slot, as the monitor shows it."""

    task_id: str
    retries: int
    #: The instance that acquired it; ``""`` while reserved for a promoted waiting task.
    instance: str
    since: float


@dataclass(frozen=True)
class SlotKeyInfo:
    """One limit key with its holders and waiting tasks (``concurrency_slots``)."""

    name: str
    value: str
    limit: int
    holders: tuple[SlotHolder, ...] = ()
    #: Task ids waiting, first to run first (at most the listing's limit).
    waiting: tuple[str, ...] = ()
    #: How many wait in all.
    waiting_count: int = 0


@dataclass
class KeySlots:
    """The state of one key, as the reference functions below read and change it."""

    limit: int
    holders: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: attempt -> message, in arrival order (dicts keep insertion order).
    waiting: dict[str, ScheduledMessage] = field(default_factory=dict)


class ConcurrencyBackend(ABC):
    """The concurrency-slot steps of a backend; each atomic, on the backend's clock."""

    @abstractmethod
    def acquire_slots(self, requests: Sequence[SlotRequest]) -> tuple[list[bool], int]:
        """Decide each request in order (``acquire``): ``True`` to run it, ``False`` if it
        now waits (its message kept by the backend). Also the number of waiting
        messages this step put into the schedule (wake the scheduler if any)."""

    @abstractmethod
    def release_slots(self, slots: Sequence[tuple[str, str, int]]) -> int:
        """Give back the slots of ``(key, task id, retries)`` (their outcomes are stored,
        or they will not run) and hand freed slots to waiting tasks; the number of
        messages put into the schedule."""

    @abstractmethod
    def sweep_slots(self) -> int:
        """Free the slots whose holders are not live on up to ``SWEEP_BATCH`` keys with
        waiting tasks (least recently swept first), handing them on; the number of
        messages put into the schedule. Workers call it every heartbeat."""

    @abstractmethod
    def concurrency_slots(self, limit: int = 100) -> list[SlotKeyInfo]:
        """Keys with holders or waiting tasks (at most ``limit`` waiting ids listed each)."""


def slot_key_dict(info: SlotKeyInfo, names: Mapping[str, str], now: float) -> dict[str, Any]:
    """One concurrency key as JSON-ready data (``names``: worker name by instance)."""
    return {
        "task": info.name, "key": info.value, "limit": info.limit,
        "running": len(info.holders), "waiting_count": info.waiting_count,
        "holders": [{"task_id": h.task_id, "retries": h.retries,
                     "worker": names.get(h.instance) if h.instance else None,
                     "instance": h.instance or None, "since": h.since,
                     "age": max(0.0, now - h.since)} for h in info.holders],
        "waiting": list(info.waiting),
    }


def attempt_name(task_id: str, retries: int) -> str:
    return f"{task_id}:{retries}"


def split_attempt(attempt: str) -> tuple[str, int]:
    task_id, _, retries = attempt.rpartition(":")
    return task_id, int(retries)


def attempt_over(record: Optional[TaskRecord], retries: int) -> bool:
    """Whether attempt ``retries`` of the task recorded as ``record`` has ended: the task
    is ready, or its record has moved on to a later attempt. A record ``retrying`` with
    ``retries == n`` is attempt ``n - 1``'s outcome, so attempt ``n`` is still to run (a
    retry waiting for a slot, or holding one before its claim)."""
    if record is None:
        return False
    return record.state in READY_STATES or record.retries > retries


def holder_live(attempt: str, holder: tuple[str, float], record: Optional[TaskRecord],
                alive: Callable[[str], bool], now: float) -> bool:
    """Whether ``holder`` still holds its slot (see the module docstring)."""
    instance, since = holder
    retries = split_attempt(attempt)[1]
    if attempt_over(record, retries):
        return False
    if record is not None and record.state == PROCESSING and record.retries == retries \
            and record.instance and alive(record.instance):
        return True
    if instance == "":
        return now - since < PROMOTED_TTL
    return alive(instance)


Records = Callable[[str], Optional[TaskRecord]]


def settle(slots: KeySlots, records: Records, alive: Callable[[str], bool],
           now: float) -> list[ScheduledMessage]:
    """Drop the holders that are not live, then hand free slots to waiting attempts in
    order (dropping those that are over): their messages, due ``now``."""
    for attempt, holder in list(slots.holders.items()):
        if not holder_live(attempt, holder, records(split_attempt(attempt)[0]), alive, now):
            del slots.holders[attempt]
    promoted: list[ScheduledMessage] = []
    while len(slots.holders) < slots.limit and slots.waiting:
        attempt = next(iter(slots.waiting))
        message = slots.waiting.pop(attempt)
        task_id, retries = split_attempt(attempt)
        if attempt_over(records(task_id), retries):
            continue
        slots.holders[attempt] = ("", now)
        promoted.append(ScheduledMessage(message.task_id, now, message.message))
    return promoted


def acquire(slots: KeySlots, request: SlotRequest, records: Records, alive: Callable[[str], bool],
            now: float) -> tuple[bool, list[ScheduledMessage]]:
    """One request: whether it runs now, and the messages promoted meanwhile.

    An attempt that holds a slot keeps it (a redelivery counts once) and becomes its
    acquirer; one already waiting keeps its place; a new one takes a free slot only
    when no one waits before it, else it waits last.
    """
    slots.limit = request.limit
    attempt = request.attempt
    if attempt in slots.holders:
        slots.holders[attempt] = (request.instance, now)
        return True, []
    if attempt in slots.waiting:
        return False, []
    if len(slots.holders) < slots.limit and not slots.waiting:  # no need to look at holders
        slots.holders[attempt] = (request.instance, now)
        return True, []
    promoted = settle(slots, records, alive, now)
    if len(slots.holders) < slots.limit:
        slots.holders[attempt] = (request.instance, now)
        return True, promoted
    slots.waiting[attempt] = request.waiting
    return False, promoted


def release(slots: KeySlots, attempt: str, records: Records, alive: Callable[[str], bool],
            now: float) -> list[ScheduledMessage]:
    """Give back ``attempt``'s slot; the messages promoted into the freed slots (the
    holders are looked at only when someone waits)."""
    slots.holders.pop(attempt, None)
    return settle(slots, records, alive, now) if slots.waiting else []
