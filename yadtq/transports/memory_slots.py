"""The in-memory backend's concurrency slots (``ConcurrencyBackend``): the reference
functions of slots_store.py over dicts, under the backend's lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Optional

from .records import Watch
from .slots_store import (
    SWEEP_BATCH,
    ConcurrencyBackend,
    KeySlots,
    SlotHolder,
    SlotKeyInfo,
    SlotRequest,
    acquire,
    attempt_name,
    release,
    settle,
    split_attempt,
)
from .types import ScheduledMessage, TaskRecord


class MemorySlots(ConcurrencyBackend):
    """Mixed into ``MemoryBackend``; uses its lock, records, schedule and liveness."""

    _cond: threading.Condition
    _watch: Watch
    _schedule: dict[tuple[str, float], tuple[ScheduledMessage, float]]
    #: limit key -> (task name, key value, its slots); made on first use
    _slots: dict[str, tuple[str, str, KeySlots]]

    def _current(self, task_id: str, now: float) -> Optional[TaskRecord]:
        raise NotImplementedError

    def _instance_alive(self, instance: str, watch: Watch) -> bool:
        raise NotImplementedError

    def _slot_keys(self) -> dict[str, tuple[str, str, KeySlots]]:
        keys: Optional[dict[str, tuple[str, str, KeySlots]]] = getattr(self, "_slots", None)
        if keys is None:
            keys = {}
            self._slots = keys
        return keys

    def _promote(self, promoted: Sequence[ScheduledMessage]) -> int:
        for entry in promoted:
            self._schedule[(entry.task_id, entry.due)] = (entry, 0.0)
        return len(promoted)

    def acquire_slots(self, requests: Sequence[SlotRequest]) -> tuple[list[bool], int]:
        now = time.time()
        answers: list[bool] = []
        promoted = 0
        with self._cond:
            watch = replace(self._watch, now=now)
            keys = self._slot_keys()
            for r in requests:
                slots = keys.setdefault(r.key, (r.name, r.value, KeySlots(r.limit)))[2]
                run, moved = acquire(slots, r, lambda t: self._current(t, now),
                                     lambda i: self._instance_alive(i, watch), now)
                promoted += self._promote(moved)
                answers.append(run)
            self._cond.notify_all()
        return answers, promoted

    def release_slots(self, slots: Sequence[tuple[str, str, int]]) -> int:
        now = time.time()
        promoted = 0
        with self._cond:
            watch = replace(self._watch, now=now)
            keys = self._slot_keys()
            for key, task_id, retries in slots:
                found = keys.get(key)
                if found is None:
                    continue
                promoted += self._promote(release(
                    found[2], attempt_name(task_id, retries), lambda t: self._current(t, now),
                    lambda i: self._instance_alive(i, watch), now))
                if not found[2].holders and not found[2].waiting:
                    del keys[key]
            self._cond.notify_all()
        return promoted

    def sweep_slots(self) -> int:
        now = time.time()
        promoted = 0
        with self._cond:
            watch = replace(self._watch, now=now)
            waiting = [k for k, (_, _, s) in self._slot_keys().items() if s.waiting][:SWEEP_BATCH]
            for key in waiting:
                promoted += self._promote(settle(
                    self._slot_keys()[key][2], lambda t: self._current(t, now),
                    lambda i: self._instance_alive(i, watch), now))
            self._cond.notify_all()
        return promoted

    def concurrency_slots(self, limit: int = 100) -> list[SlotKeyInfo]:
        with self._cond:
            found = []
            for name, value, slots in self._slot_keys().values():
                holders = tuple(SlotHolder(*split_attempt(a), instance, since)
                                for a, (instance, since) in slots.holders.items())
                waiting = tuple(split_attempt(a)[0] for a in list(slots.waiting)[:max(limit, 0)])
                found.append(SlotKeyInfo(name, value, slots.limit, holders, waiting,
                                         len(slots.waiting)))
        return found
