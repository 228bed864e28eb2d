"""The cluster as plain data: what ``yadtq monitor`` and ``yadtq inspect`` show.

A :class:`ClusterSnapshot` joins three cheap reads: the backend's
:meth:`~yadtq.transports.base.ResultBackend.snapshot` (counters and indexes kept
with every state change, never a scan of the stored tasks), the workers'
heartbeats with the failure history, and the broker's depth (Kafka: consumer-group
lag) of each queue. Rendering lives in ``yadtq/cli/monitor.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .envelope import peek_created, unpack
from .exceptions import YADTQError
from .namespace import DEFAULT_NAMESPACE
from .schedules import ScheduleInfo, listing_if_kept
from .settings import redact_url
from .transports.base import RECENT_LIMIT, BackendSnapshot, Progress, TaskSummary, WorkerFailure, WorkerInfo
from .transports.canvas_store import CanvasBackend, GroupInfo
from .transports.slots_store import ConcurrencyBackend, SlotKeyInfo, slot_key_dict

if TYPE_CHECKING:
    from .app import YADTQ

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueStatus:
    """One queue: how many messages wait in it, and since when the oldest does."""

    name: str
    #: Messages not yet done (Kafka: the consumer group's lag); ``None`` if unknown.
    depth: Optional[int]
    #: When the oldest waiting task was submitted; ``None`` if the broker cannot tell.
    oldest_created: Optional[float] = None
    #: Messages waiting per priority level (Kafka: per lane of levels, ``"7-9"``), only
    #: those with any; ``None`` if the broker cannot tell.
    by_priority: Optional[dict[str, int]] = None

    def priorities_text(self) -> str:
        """``"9: 3, 0: 200"`` (highest first), or ``""`` when only the default level waits."""
        levels = self.by_priority or {}
        if not any(level not in ("0", "0-3") for level in levels):
            return ""
        return ", ".join(f"{level}: {count}" for level, count in sorted(
            levels.items(), key=lambda item: -int(item[0].split("-")[0])))


@dataclass(frozen=True)
class WorkerStatus:
    """One worker's latest heartbeat, judged at snapshot time."""

    info: WorkerInfo
    #: ``alive``, ``unresponsive`` or ``offline``.
    status: str

    @property
    def name(self) -> str:
        return self.info.worker

    @property
    def healthy(self) -> bool:
        """Its consume loop turned within twice the heartbeat interval (as it reported)."""
        return self.info.healthy


@dataclass(frozen=True)
class ClusterSnapshot:
    """Everything the monitor shows, taken at ``taken`` (epoch seconds)."""

    taken: float
    app: str
    broker: str
    backend: str
    queues: tuple[QueueStatus, ...]
    workers: tuple[WorkerStatus, ...]
    #: Worker failures, newest first.
    failures: tuple[WorkerFailure, ...]
    tasks: BackendSnapshot
    #: Tasks finished (succeeded or failed) per second since the previous snapshot.
    throughput: Optional[float] = None
    #: The latest progress reported by tasks in progress, by task id.
    progress: Mapping[str, Progress] = dataclasses.field(default_factory=dict)
    #: The periodic schedules, by name (none on a backend that keeps none).
    schedules: tuple[ScheduleInfo, ...] = ()
    #: Chords waiting for members, oldest first (empty if the backend stores none).
    chords: tuple[GroupInfo, ...] = ()
    #: Concurrency keys with slots taken or tasks waiting (empty on a backend without slots).
    limits: tuple[SlotKeyInfo, ...] = ()
    #: The app's namespace (``namespace.py``): whose topics, keys and tables these are.
    namespace: str = DEFAULT_NAMESPACE

    def worker_names(self) -> dict[str, str]:
        """Worker name by instance (who holds a concurrency slot)."""
        return {w.info.instance: w.name for w in self.workers}

    @property
    def queued(self) -> Optional[int]:
        """Messages waiting in every queue shown (``None`` if no depth is known)."""
        depths = [q.depth for q in self.queues if q.depth is not None]
        return sum(depths) if depths else None

    @property
    def oldest_queued_age(self) -> Optional[float]:
        """Seconds the oldest waiting task has waited since submission, if known."""
        created = [q.oldest_created for q in self.queues if q.oldest_created is not None]
        return max(0.0, self.taken - min(created)) if created else None

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (epoch-second timestamps, ages in seconds)."""
        tasks = self.tasks
        return {
            "taken": self.taken,
            "app": self.app,
            "namespace": self.namespace,
            "broker": self.broker,
            "backend": self.backend,
            "counts": {
                "queued": self.queued,
                "processing": tasks.processing,
                "scheduled": tasks.scheduled,
                "retrying": tasks.retrying,
                "dead_lettered": tasks.totals.dead_lettered,
            },
            "oldest_queued_age": self.oldest_queued_age,
            "totals": dataclasses.asdict(tasks.totals),
            "throughput": self.throughput,
            "queues": [
                {"name": q.name, "depth": q.depth, "by_priority": q.by_priority,
                 "oldest_created": q.oldest_created,
                 "oldest_age": None if q.oldest_created is None else max(0.0, self.taken - q.oldest_created)}
                for q in self.queues
            ],
            "processing": [{**dataclasses.asdict(t), **progress_dict(self.progress.get(t.task_id))}
                           for t in tasks.processing_tasks],
            "retrying": [dataclasses.asdict(t) for t in tasks.retrying_tasks],
            "scheduled": [dataclasses.asdict(t) for t in tasks.scheduled_tasks],
            "recent_successes": [dataclasses.asdict(t) for t in tasks.recent_successes],
            "recent_failures": [dataclasses.asdict(t) for t in tasks.recent_failures],
            "workers": [worker_dict(w, self.taken) for w in self.workers],
            "worker_failures": [dataclasses.asdict(f) for f in self.failures],
            "schedules": [info.to_dict() for info in self.schedules],
            "chords": [{"id": c.group_id, "done": c.done, "size": c.size,
                        "callback_id": c.callback_id, "created": c.created} for c in self.chords],
            "concurrency": [slot_key_dict(k, self.worker_names(), self.taken) for k in self.limits],
        }


def progress_of(app: YADTQ, tasks: Sequence[TaskSummary]) -> dict[str, Progress]:
    """The latest progress of each of these tasks that reported some (one backend read)."""
    if not tasks:
        return {}
    found = app.backend.get_progress([t.task_id for t in tasks])
    return {p.task_id: p for p in found if p is not None}


def progress_dict(progress: Optional[Progress]) -> dict[str, Any]:
    """``custom_state`` and ``meta`` of a task's progress as JSON-ready data (empty: none)."""
    if progress is None:
        return {}
    try:
        meta = unpack(progress.meta) if progress.meta is not None else None
    except YADTQError:
        meta = None
    return {"custom_state": progress.state, "meta": meta, "progress_updated": progress.timestamp}


def progress_text(progress: Optional[Progress]) -> str:
    """``PROGRESS 3/10 (30%)``, ``DOWNLOADING``, or ``""``: a progress in a few words."""
    if progress is None:
        return ""
    meta = progress_dict(progress).get("meta")
    if isinstance(meta, dict) and "done" in meta:
        done, total = meta.get("done"), meta.get("total")
        if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
            return f"{progress.state} {done:g}/{total:g} ({100 * done / total:.0f}%)"
        return f"{progress.state} {done}"
    return progress.state


def worker_dict(worker: WorkerStatus, now: float) -> dict[str, Any]:
    """One worker as JSON-ready data."""
    info = worker.info
    return {
        "worker": info.worker,
        "status": worker.status,
        "healthy": info.healthy,
        "tasks_done": info.tasks_done,
        "tasks_failed": info.tasks_failed,
        "active": info.active,
        "last_heartbeat": info.last_heartbeat,
        "heartbeat_age": info.silent,
        "hostname": info.hostname,
        "pid": info.pid,
        "queues": list(info.queues),
        "concurrency": info.concurrency,
        "pool": info.pool,
        "started": info.started,
        "instance": info.instance,
    }


def worker_statuses(app: YADTQ, now: Optional[float] = None) -> tuple[WorkerStatus, ...]:
    """Every known worker, by name, with its status judged at ``now``."""
    now = time.time() if now is None else now
    infos = sorted(app.backend.workers(), key=lambda info: info.worker)
    return tuple(WorkerStatus(info, app.worker_state(info, now)) for info in infos)


def monitored_queues(app: YADTQ, workers: Sequence[WorkerStatus],
                     queues: Optional[Sequence[str]] = None) -> list[str]:
    """``queues`` if given, else those the workers consume (else the app's default queue)
    followed by every other queue that holds tasks, so a queue no worker consumes shows."""
    if queues:
        return list(dict.fromkeys(queues))
    reported = [q for w in workers for q in w.info.queues] or [app.settings.default_queue]
    return list(dict.fromkeys([*reported, *app.broker.queues_with_tasks()]))


def queue_status(app: YADTQ, queue: str) -> QueueStatus:
    """Depth and oldest submission time of one queue, from the broker."""
    broker = app.broker
    waiting = broker.peek(queue)
    levels = broker.depth_by_priority(queue)
    depth = sum(levels.values()) if levels is not None else broker.depth(queue)
    return QueueStatus(queue, depth, peek_created(waiting.body) if waiting is not None else None,
                       levels)


def take_snapshot(app: YADTQ, queues: Optional[Sequence[str]] = None, *, limit: int = RECENT_LIMIT,
                  previous: Optional[ClusterSnapshot] = None) -> ClusterSnapshot:
    """The cluster now; its cost does not grow with the number of stored results.

    Args:
        app: the app whose transports to read.
        queues: the queues to show (default: those the workers consume, else the default queue).
        limit: most tasks in each list.
        previous: an earlier snapshot, to compute the throughput since then.

    Raises:
        BrokerUnavailable, BackendUnavailable: a transport did not answer.
    """
    now = time.time()
    workers = worker_statuses(app, now)
    tasks = app.backend.snapshot(limit)
    failures = tuple(app.worker_failures(limit))
    queue_states = tuple(queue_status(app, q) for q in monitored_queues(app, workers, queues))
    snapshot = ClusterSnapshot(
        taken=now, app=app.name, namespace=app.settings.namespace,
        broker=redact_url(app.settings.broker_url),
        backend=redact_url(app.settings.backend_url), queues=queue_states, workers=workers,
        failures=failures, tasks=tasks, progress=progress_of(app, tasks.processing_tasks),
        schedules=tuple(listing_if_kept(app)),
        chords=tuple(app.backend.open_chords(limit)) if isinstance(app.backend, CanvasBackend) else (),
        limits=(tuple(app.backend.concurrency_slots(limit))
                if isinstance(app.backend, ConcurrencyBackend) else ()),
    )
    if previous is not None:
        snapshot = dataclasses.replace(snapshot, throughput=throughput(previous, snapshot))
    return snapshot


def throughput(before: ClusterSnapshot, after: ClusterSnapshot) -> Optional[float]:
    """Tasks finished (succeeded or failed) per second between two snapshots.

    ``None`` when no time passed; never negative (counters of a wiped store restart at 0).
    """
    elapsed = after.taken - before.taken
    if elapsed <= 0:
        return None
    finished = (after.tasks.totals.succeeded + after.tasks.totals.failed
                - before.tasks.totals.succeeded - before.tasks.totals.failed)
    return max(0, finished) / elapsed
