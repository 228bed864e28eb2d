"""``memory://``: the in-process reference transport, for tests and eager runs.

A real implementation of the contract in ``base.py``, not a mock: deliveries not
reported done are redelivered when their consumer closes, the schedule leases
what it hands out, and ``wait`` is woken by a condition variable.

This module holds the backend; the broker is ``memory_broker.py`` (re-exported here),
and the backend's capabilities are mixed in from ``memory_canvas.py``,
``memory_periodic.py``, ``memory_slots.py`` and ``memory_details.py``.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from ..flow import admit, slack
from ..states import FAILED, PROCESSING, READY_STATES, RETRYING, REVOKED, SUCCESS
from .base import (
    RECENT_LIMIT,
    BackendSnapshot,
    Claim,
    FailedMessage,
    Progress,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    TaskSummary,
    WorkerFailure,
    WorkerInfo,
)
from .limits_store import LimitsBackend, RateRequest
from .memory_broker import MemoryBroker, MemoryConsumer
from .memory_canvas import MemoryCanvas
from .memory_details import MemoryDetails
from .memory_periodic import MemoryPeriodic
from .memory_slots import MemorySlots
from .records import (
    DEAD_LETTERED,
    PRUNE_BATCH,
    TOTAL_OF_STATE,
    Watch,
    apply_change,
    decide_claim,
    instance_alive,
    silence,
    summarize,
    summarize_scheduled,
    totals_from,
    watch_after_beat,
)

if TYPE_CHECKING:
    from ..settings import Settings
    from .memory_canvas import _StoredGroup

__all__ = ["MemoryBackend", "MemoryBroker", "MemoryConsumer"]


class MemoryBackend(ResultBackend, MemoryCanvas, MemoryPeriodic, LimitsBackend, MemorySlots,
                    MemoryDetails):
    """Records, schedule, heartbeats and dedupe keys in dicts behind one condition.

    For the monitor it keeps, updated with every stored record, the ids of the tasks
    ``processing`` and ``retrying``, counters of the states entered, and the latest
    successes and failures.
    """

    scheme = "memory"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self._cond = threading.Condition()
        self._records: dict[str, tuple[TaskRecord, float]] = {}
        self._revoked: dict[str, float] = {}
        self._schedule: dict[tuple[str, float], tuple[ScheduledMessage, float]] = {}
        #: worker name -> (its latest report, when it arrived on this backend's clock)
        self._workers: dict[str, tuple[WorkerInfo, float]] = {}
        self._watch = Watch(0.0)
        self._failures: deque[WorkerFailure] = deque(maxlen=settings.failure_history)
        self._dedupe: dict[str, tuple[str, float]] = {}
        self._progress: dict[str, tuple[Progress, float]] = {}
        self._groups: dict[str, _StoredGroup] = {}
        #: task name -> attempt -> start time or reservation (flow control)
        self._rates: dict[str, dict[str, float]] = {}
        # Monitoring: ids by state (dicts as ordered sets), totals, latest finished tasks.
        self._by_state: dict[str, dict[str, None]] = {PROCESSING: {}, RETRYING: {}}
        self._totals: Counter[str] = Counter()
        self._recent: dict[str, deque[TaskSummary]] = {
            SUCCESS: deque(maxlen=RECENT_LIMIT), FAILED: deque(maxlen=RECENT_LIMIT)}
        # Operator support: failed messages by task id (insertion order), control queues.
        self._failed: dict[str, tuple[FailedMessage, float]] = {}
        self._control: dict[str, list[dict[str, Any]]] = {}

    # -- states and results
    def _current(self, task_id: str, now: float) -> Optional[TaskRecord]:
        entry = self._records.get(task_id)
        if entry is None:
            return None
        if entry[1] < now:
            self._drop(task_id)
            return None
        return entry[0]

    def _drop(self, task_id: str) -> None:
        self._records.pop(task_id, None)
        self._progress.pop(task_id, None)
        for ids in self._by_state.values():
            ids.pop(task_id, None)

    def _store(self, record: TaskRecord, now: float) -> None:
        """Store a changed record and count the state it entered."""
        self._records[record.task_id] = (record, now + self.settings.result_expires)
        for state, ids in self._by_state.items():
            if record.state == state:
                ids[record.task_id] = None
            else:
                ids.pop(record.task_id, None)
        total = TOTAL_OF_STATE.get(record.state)
        if total is not None:
            self._totals[total] += 1
        recent = self._recent.get(record.state)
        if recent is not None:
            recent.appendleft(summarize(record))

    def record(self, changes: Sequence[StateChange],
               scheduled: Sequence[ScheduledMessage] = ()) -> None:
        now = time.time()
        with self._cond:
            self._record_locked(changes, scheduled, now)
            self._cond.notify_all()

    def _record_locked(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                       now: float) -> None:
        for entry in scheduled:
            self._schedule[(entry.task_id, entry.due)] = (entry, 0.0)
        for change in changes:
            if change.dead_lettered:
                self._totals[DEAD_LETTERED] += 1
            updated = apply_change(self._current(change.task_id, now), change)
            if updated is not None:
                self._store(updated, now)

    def claim(self, claims: Sequence[Claim], alive_after: Optional[float] = None) -> list[str]:
        now = time.time()
        decisions = []
        with self._cond:
            watch = replace(self._watch, now=now)
            for claim in claims:
                decision, record = decide_claim(
                    self._current(claim.task_id, now), claim,
                    revoked=claim.task_id in self._revoked,
                    instance_alive=lambda inst: self._instance_alive(inst, watch),
                )
                if record is not None:
                    self._store(record, now)
                decisions.append(decision)
            self._cond.notify_all()
        return decisions

    def _instance_alive(self, instance: str, watch: Watch) -> bool:
        seen = next((at for w, at in self._workers.values()
                     if w.instance == instance and w.state == "running"), None)
        return instance_alive(seen, watch, self.settings.worker_unresponsive_after,
                              self.settings.heartbeat_interval)

    def get(self, task_ids: Sequence[str]) -> list[Optional[TaskRecord]]:
        now = time.time()
        with self._cond:
            return [self._current(t, now) for t in task_ids]

    def wait(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                record = self._current(task_id, time.time())
                if record is not None and record.state in READY_STATES:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def forget(self, task_ids: Sequence[str]) -> None:
        with self._cond:
            for t in task_ids:
                self._drop(t)

    def revoke(self, task_ids: Sequence[str], timestamp: float) -> None:

        now = time.time()
        with self._cond:
            for t in task_ids:
                self._revoked[t] = timestamp
                current = self._current(t, now)
                if current is None or current.state != "processing":
                    updated = apply_change(current, StateChange(t, REVOKED, timestamp))
                    if updated is not None:
                        self._store(updated, now)
            self._cond.notify_all()

    # -- progress of running tasks
    def record_progress(self, updates: Sequence[Progress]) -> None:
        now = time.time()
        with self._cond:
            for update in updates:
                self._progress[update.task_id] = (update, now + self.settings.result_expires)
            self._cond.notify_all()

    def get_progress(self, task_ids: Sequence[str]) -> list[Optional[Progress]]:
        now = time.time()
        with self._cond:
            found = [self._progress.get(t) for t in task_ids]
        return [entry[0] if entry is not None and entry[1] >= now else None for entry in found]

    # -- schedule
    def claim_due(self, now: Optional[float], limit: int, lease: float) -> list[ScheduledMessage]:
        now = time.time() if now is None else now
        taken: list[ScheduledMessage] = []
        with self._cond:
            for key, (entry, leased_until) in sorted(self._schedule.items(), key=lambda kv: kv[1][0].due):
                if len(taken) >= limit or entry.due > now:
                    break
                if leased_until > now:
                    continue
                self._schedule[key] = (entry, now + lease)
                taken.append(entry)
        return taken

    def release_due(self, entries: Sequence[ScheduledMessage]) -> None:
        with self._cond:
            for e in entries:
                self._schedule.pop((e.task_id, e.due), None)

    def next_due(self) -> Optional[float]:
        with self._cond:
            return min((e.due for e, _ in self._schedule.values()), default=None)

    # -- flow control
    def admit_rate(self, requests: Sequence[RateRequest]) -> list[Optional[float]]:
        now = time.time()
        answers: list[Optional[float]] = []
        with self._cond:
            for r in requests:
                at = admit(self._rates.setdefault(r.name, {}), r.attempt, r.count, r.period, now)
                if at <= now:
                    answers.append(None)
                    continue
                entry = replace(r.waiting, due=at + slack(r.period))
                self._schedule[(entry.task_id, entry.due)] = (entry, 0.0)
                answers.append(at)
        return answers

    # -- workers
    def heartbeat(self, info: WorkerInfo) -> None:
        now = time.time()
        with self._cond:
            self._watch = watch_after_beat(replace(self._watch, now=now), info.resumed)
            self._workers[info.worker] = (info, now)
            # Bounded: at most PRUNE_BATCH workers leave per heartbeat.
            stale = now - self.settings.worker_retention
            for name in [n for n, (_, seen) in self._workers.items() if seen < stale][:PRUNE_BATCH]:
                del self._workers[name]

    def workers(self) -> list[WorkerInfo]:
        with self._cond:
            watch = replace(self._watch, now=time.time())
            return [replace(info, last_heartbeat=seen, silent=silence(seen, watch))
                    for info, seen in self._workers.values()]

    def record_failure(self, failure: WorkerFailure) -> None:
        with self._cond:
            if all(f.instance != failure.instance for f in self._failures):
                self._failures.appendleft(failure)

    def failures(self, limit: int = 100) -> list[WorkerFailure]:
        with self._cond:
            return list(self._failures)[:limit]

    # -- monitoring
    def snapshot(self, limit: int = RECENT_LIMIT) -> BackendSnapshot:
        now = time.time()
        with self._cond:
            listed: dict[str, list[TaskRecord]] = {}
            for state, ids in self._by_state.items():
                # Bounded by the tasks in that state, never by every stored task.
                found = [self._current(t, now) for t in list(ids)]
                listed[state] = sorted((r for r in found if r is not None), key=lambda r: r.updated)
            due = heapq.nsmallest(max(limit, 0), (e for e, _ in self._schedule.values()),
                                  key=lambda e: e.due)
            recent = min(max(limit, 0), RECENT_LIMIT)
            return BackendSnapshot(
                processing=len(listed[PROCESSING]),
                retrying=len(listed[RETRYING]),
                scheduled=len(self._schedule),
                totals=totals_from(self._totals),
                processing_tasks=tuple(summarize(r) for r in listed[PROCESSING][:limit]),
                retrying_tasks=tuple(summarize(r) for r in listed[RETRYING][:limit]),
                scheduled_tasks=tuple(summarize_scheduled(e) for e in due),
                recent_successes=tuple(self._recent[SUCCESS])[:recent],
                recent_failures=tuple(self._recent[FAILED])[:recent],
            )

    # -- operator support
    def keep_failed(self, failed: Sequence[FailedMessage]) -> None:
        expires = time.time() + self.settings.result_expires
        with self._cond:
            for message in failed:
                self._failed.pop(message.task_id, None)
                self._failed[message.task_id] = (message, expires)

    def failed_messages(self, limit: int = 1000) -> list[FailedMessage]:
        now = time.time()
        with self._cond:
            for task_id in [t for t, (_, exp) in self._failed.items() if exp < now]:
                del self._failed[task_id]
            return [m for m, _ in reversed(self._failed.values())][:max(limit, 0)]

    def take_failed(self, task_ids: Sequence[str]) -> list[Optional[FailedMessage]]:
        now = time.time()
        with self._cond:
            taken = [self._failed.pop(t, None) for t in task_ids]
        return [entry[0] if entry is not None and entry[1] >= now else None for entry in taken]

    def send_control(self, workers: Sequence[str], command: Mapping[str, Any]) -> None:
        with self._cond:
            for worker in workers:
                self._control.setdefault(worker, []).append(dict(command))

    def take_control(self, worker: str) -> list[dict[str, Any]]:
        with self._cond:
            return self._control.pop(worker, [])

    # -- dedupe
    def claim_dedupe(self, key: str, task_id: str, ttl: float) -> str:
        now = time.time()
        with self._cond:
            earlier = self._dedupe.get(key)
            if earlier is not None and earlier[1] >= now:
                record = self._current(earlier[0], now)
                if record is None or record.state not in ("failed", "revoked"):
                    return earlier[0]
            self._dedupe[key] = (task_id, now + ttl)
            return task_id

    def release_dedupe(self, key: str, task_id: str) -> None:
        with self._cond:
            earlier = self._dedupe.get(key)
            if earlier is not None and earlier[0] == task_id:
                del self._dedupe[key]
