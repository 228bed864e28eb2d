"""``memory://``: the in-process reference transport, for tests and eager runs.

A real implementation of the contract in ``base.py``, not a mock: deliveries not
reported done are redelivered when their consumer closes, the schedule leases
what it hands out, and ``wait`` is woken by a condition variable.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Optional

from ..flow import admit, slack
from ..states import FAILED, PROCESSING, READY_STATES, RETRYING, REVOKED, SUCCESS
from .base import (
    RECENT_LIMIT,
    BackendSnapshot,
    Broker,
    Claim,
    Consumer,
    DeadLetter,
    Delivery,
    DrainCallback,
    FailedMessage,
    Message,
    Progress,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    TaskSummary,
    WorkerFailure,
    WorkerInfo,
)
from .canvas_store import (
    CHORD_FAILED,
    CHORD_FIRED,
    CHORD_OPEN,
    CanvasBackend,
    ChordJoin,
    GroupInfo,
    GroupSpec,
)
from .limits_store import LimitsBackend, RateRequest
from .memory_details import MemoryDetails
from .memory_slots import MemorySlots
from .periodic_store import PeriodicEntry, PeriodicStore
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
from .waiting import PriorityDeque

if TYPE_CHECKING:
    from ..settings import Settings


class MemoryBroker(Broker):
    """Queues as in-process deques."""

    scheme = "memory"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self._queues: dict[str, PriorityDeque] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=10_000)
        self._dead_ids = itertools.count(1)
        self._cond = threading.Condition()
        self._tokens = itertools.count(1)
        self._turn = 0

    def publish(self, messages: Sequence[Message]) -> None:
        with self._cond:
            for m in messages:
                delivery = Delivery(body=m.body, queue=m.queue, headers=dict(m.headers),
                                    key=m.key, token=next(self._tokens))
                self._queues.setdefault(m.queue, PriorityDeque()).append(delivery)
            self._cond.notify_all()

    def consumer(self, queues: Sequence[str], *, on_drain: Optional[DrainCallback] = None,
                 worker: Optional[str] = None) -> Consumer:
        return MemoryConsumer(self, list(queues))

    def purge(self, queue: str) -> int:
        with self._cond:
            waiting = self._queues.pop(queue, None)
            return len(waiting) if waiting is not None else 0

    def depth(self, queue: str) -> Optional[int]:
        with self._cond:
            waiting = self._queues.get(queue)
            return len(waiting) if waiting is not None else 0

    def depth_by_priority(self, queue: str) -> Optional[dict[str, int]]:
        with self._cond:
            waiting = self._queues.get(queue)
            return {str(level): count for level, count in waiting.counts().items()} if waiting else {}

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        with self._cond:
            return [Delivery(body=d.body, queue=d.queue, headers=dict(d.headers), key=d.key, token=d.id)
                    for d in list(self._dead)[-limit:]] if limit > 0 else []

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._cond:
            return list(self._dead)[-limit:] if limit > 0 else []

    def requeue_dead_letters(self, ids: Optional[Sequence[str]] = None) -> list[DeadLetter]:
        with self._cond:
            wanted = None if ids is None else set(ids)
            chosen = [d for d in self._dead if wanted is None or d.id in wanted]
            self.publish([d.message() for d in chosen])
            for letter in chosen:
                self._dead.remove(letter)
            return chosen

    def purge_dead_letters(self) -> int:
        with self._cond:
            count = len(self._dead)
            self._dead.clear()
            return count

    def dead_letter_message(self, message: Message, reason: str) -> None:
        self._dead_letter(Delivery(body=message.body, queue=message.queue,
                                   headers=dict(message.headers), key=message.key), reason)

    def queues_with_tasks(self) -> list[str]:
        with self._cond:
            return sorted(name for name, waiting in self._queues.items() if waiting)

    def peek(self, queue: str) -> Optional[Delivery]:
        with self._cond:
            waiting = self._queues.get(queue)
            return waiting.peek() if waiting else None

    # used by MemoryConsumer
    def _take(self, queues: Sequence[str], max_items: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                taken: list[Delivery] = []
                while len(taken) < max_items:
                    # The highest priority among the queues' heads; equal ones in turn.
                    best: Optional[PriorityDeque] = None
                    best_level = -1
                    start = self._turn % len(queues)
                    for name in [*queues[start:], *queues[:start]]:
                        waiting = self._queues.get(name)
                        level = waiting.top() if waiting is not None else None
                        if level is not None and level > best_level:
                            best, best_level = waiting, level
                    if best is None:
                        break
                    self._turn += 1
                    taken.append(best.popleft())
                if taken or max_items <= 0:
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _requeue(self, deliveries: Sequence[Delivery]) -> None:
        with self._cond:
            for d in reversed(deliveries):
                self._queues.setdefault(d.queue, PriorityDeque()).appendleft(d)
            self._cond.notify_all()

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._cond:
            self._dead.append(DeadLetter(str(next(self._dead_ids)), delivery.queue, reason, time.time(),
                                         delivery.body, dict(delivery.headers), delivery.key))


class MemoryConsumer(Consumer):
    def __init__(self, broker: MemoryBroker, queues: list[str]) -> None:
        self._broker = broker
        self._queues = queues
        self._lock = threading.Lock()
        self._outstanding: dict[int, Delivery] = {}

    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        taken = self._broker._take(self._queues, max_items, timeout)
        with self._lock:
            for d in taken:
                self._outstanding[d.token] = d
        return taken

    def done(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            for d in deliveries:
                self._outstanding.pop(d.token, None)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._broker._dead_letter(delivery, reason)
        self.done([delivery])

    def in_flight(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def close(self) -> None:
        with self._lock:
            left = list(self._outstanding.values())
            self._outstanding.clear()
        if left:
            self._broker._requeue(left)


class MemoryBackend(ResultBackend, CanvasBackend, PeriodicStore, LimitsBackend, MemorySlots,
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
        from ..states import REVOKED

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

    # -- periodic schedules (PeriodicStore; periodic_store.py)
    def _periodic(self) -> dict[str, PeriodicEntry]:
        """name -> stored schedule (call with the condition held)."""
        table: Optional[dict[str, PeriodicEntry]] = getattr(self, "_periodic_table", None)
        if table is None:
            table = {}
            self._periodic_table = table
        return table

    def save_periodic(self, name: str, spec: bytes, next_run: float) -> bool:
        with self._cond:
            table = self._periodic()
            entry = table.get(name)
            if entry is not None and entry.spec == spec:
                return False
            table[name] = (PeriodicEntry(name, spec, next_run) if entry is None
                           else replace(entry, spec=spec, next_run=next_run))
            return True

    def periodic_entries(self) -> list[PeriodicEntry]:
        with self._cond:
            return sorted(self._periodic().values(), key=lambda e: e.name)

    def due_periodic(self, now: Optional[float] = None) -> list[PeriodicEntry]:
        now = time.time() if now is None else now
        with self._cond:
            return sorted((e for e in self._periodic().values() if not e.paused and e.next_run <= now),
                          key=lambda e: e.next_run)

    def advance_periodic(self, name: str, expected: float, next_run: float,
                         tick: Optional[ScheduledMessage]) -> bool:
        now = time.time()
        with self._cond:
            table = self._periodic()
            entry = table.get(name)
            if entry is None or entry.paused or entry.next_run != expected or expected > now:
                return False
            entry = replace(entry, next_run=next_run)
            if tick is not None:
                self._schedule[(tick.task_id, tick.due)] = (tick, 0.0)
                entry = replace(entry, last_run=tick.due, last_task_id=tick.task_id)
            table[name] = entry
            return True

    def pause_periodic(self, name: str, paused: bool, next_run: Optional[float] = None) -> bool:
        with self._cond:
            table = self._periodic()
            entry = table.get(name)
            if entry is None:
                return False
            table[name] = replace(entry, paused=paused,
                                  next_run=entry.next_run if next_run is None else next_run)
            return True

    def remove_periodic(self, name: str) -> bool:
        with self._cond:
            return self._periodic().pop(name, None) is not None
    # -- canvas (groups and chords): see CanvasBackend in base.py
    def save_groups(self, groups: Sequence[GroupSpec]) -> None:
        now = time.time()
        with self._cond:
            for spec in groups:
                info = GroupInfo(spec.group_id, spec.member_ids, spec.created,
                                 callback_id=spec.callback.task_id if spec.callback else None,
                                 state=CHORD_OPEN if spec.callback else None)
                self._groups[spec.group_id] = _StoredGroup(info, spec.callback, set(),
                                                           now + self.settings.result_expires)

    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        now = time.time()
        with self._cond:
            self._record_locked(changes, scheduled, now)
            for join in joins:
                self._join(join, now)
            self._cond.notify_all()

    def _join(self, join: ChordJoin, now: float) -> None:
        stored = self._group(join.chord_id, now)
        record = self._current(join.task_id, now)
        if stored is None or stored.callback is None or stored.info.state != CHORD_OPEN or record is None:
            return
        if record.state in (FAILED, REVOKED):
            stored.info = replace(stored.info, state=CHORD_FAILED, failed_member=join.task_id)
        elif record.state == SUCCESS:
            stored.done.add(join.index)
            stored.info = replace(stored.info, done=len(stored.done))
            if len(stored.done) >= stored.info.size:
                stored.info = replace(stored.info, state=CHORD_FIRED)
                entry = stored.callback
                self._schedule[(entry.task_id, entry.due)] = (entry, 0.0)

    def _group(self, group_id: str, now: float) -> Optional[_StoredGroup]:
        stored = self._groups.get(group_id)
        if stored is not None and stored.expires < now:
            del self._groups[group_id]
            return None
        return stored

    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        with self._cond:
            stored = self._group(group_id, time.time())
            return stored.info if stored is not None else None

    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        now = time.time()
        with self._cond:
            found = [s.info for s in list(self._groups.values())
                     if s.info.state == CHORD_OPEN and s.expires >= now]
        return sorted(found, key=lambda info: info.created)[:max(limit, 0)]


@dataclass
class _StoredGroup:
    info: GroupInfo
    callback: Optional[ScheduledMessage]
    #: Indexes of the chord's members counted successful.
    done: set[int]
    expires: float
