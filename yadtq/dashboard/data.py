"""What the dashboard shows, as JSON-ready data: one cheap read per view.

Every view reads the counters and indexes the backend keeps and the broker's depths
(:func:`yadtq.monitor.take_snapshot`), or one task's record by id: nothing here scans
the stored results, so a page costs the same with a million of them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..envelope import decode, unpack
from ..exceptions import ProtocolError, YADTQError
from ..monitor import ClusterSnapshot, take_snapshot
from ..transports.base import TaskSummary
from ..transports.details_store import DetailsBackend, TaskCall

if TYPE_CHECKING:
    from ..app import YADTQ

#: Tasks listed per list in a snapshot.
LIST_LIMIT = 50
#: Longest text shown for an argument list or a result.
TEXT_LIMIT = 4000
#: Seconds one snapshot serves every page and stream.
SNAPSHOT_TTL = 1.0


class SnapshotCache:
    """One :func:`take_snapshot` a second, shared by every client (throughput between them)."""

    def __init__(self, app: YADTQ, ttl: float = SNAPSHOT_TTL) -> None:
        self.app = app
        self.ttl = ttl
        self._lock = threading.Lock()
        self._snapshot: Optional[ClusterSnapshot] = None
        self._taken = 0.0

    def get(self) -> ClusterSnapshot:
        with self._lock:
            if self._snapshot is None or time.monotonic() - self._taken >= self.ttl:
                self._snapshot = take_snapshot(self.app, limit=LIST_LIMIT, previous=self._snapshot)
                self._taken = time.monotonic()
            return self._snapshot


def overview(app: YADTQ, snapshot: ClusterSnapshot) -> dict[str, Any]:
    """The snapshot as the pages use it, plus this app's queues and registered tasks."""
    data = snapshot.to_dict()
    data["registered"] = sorted(app.tasks)
    data["schedules"] = schedules(app)
    return data


def _text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."


def _call(app: YADTQ, body: bytes) -> Optional[dict[str, Any]]:
    try:
        envelope = decode(body, app.settings.secret_key)
    except ProtocolError:
        return None
    return {"args": [_text(a) for a in envelope.args],
            "kwargs": {k: _text(v) for k, v in envelope.kwargs.items()},
            "parent_id": envelope.parent_id, "root_id": envelope.root_id, "queue": envelope.queue}


def task_detail(app: YADTQ, task_id: str) -> Optional[dict[str, Any]]:
    """One task's record, its call when known, and its state history (``None``: unknown)."""
    record = app.backend.get([task_id])[0]
    if record is None:
        return None
    detail: dict[str, Any] = {
        "task_id": record.task_id, "state": record.state, "name": record.name, "queue": record.queue,
        "worker": record.worker, "retries": record.retries, "eta": record.eta,
        "history": [{"state": s, "timestamp": ts, "worker": w} for s, ts, w in record.history],
        "result": None, "error": None, "call": None, "retryable": False, "children": [],
    }
    if record.state == states.SUCCESS and record.result is not None:
        try:
            detail["result"] = _text(unpack(record.result))
        except ProtocolError as exc:
            detail["result"] = f"<unreadable: {exc}>"
    if record.error is not None:
        detail["error"] = dataclasses.asdict(record.error)
        detail["error"]["args"] = _text(record.error.args)
    if record.state == states.FAILED:
        kept = [m for m in app.backend.failed_messages(LIST_LIMIT) if m.task_id == task_id]
        if kept:
            detail["call"] = _call(app, kept[0].body)
            detail["retryable"] = True
    backend = app.backend
    if isinstance(backend, DetailsBackend):
        if detail["call"] is None:
            detail["call"] = _stored_call(backend.calls([task_id])[0], record.queue)
        detail["children"] = _children(app, backend, task_id)
    return detail


def _stored_call(call: Optional[TaskCall], queue: Optional[str]) -> Optional[dict[str, Any]]:
    """A call the workers saved when the task started (bounded texts; ``details_store.py``)."""
    if call is None:
        return None
    return {"args": list(call.args), "kwargs": dict(call.kwargs), "omitted": call.omitted,
            "parent_id": call.parent_id, "root_id": call.root_id, "queue": queue}


def _children(app: YADTQ, backend: DetailsBackend, task_id: str) -> list[dict[str, Any]]:
    """The tasks a canvas started after this one, with their names and states (bounded:
    ``CHILDREN_LIMIT`` ids, then one read of their records)."""
    ids = backend.children(task_id)
    records = app.backend.get(ids) if ids else []
    return [{"task_id": child, "name": r.name if r is not None else None,
             "state": r.state if r is not None else None} for child, r in zip(ids, records)]


def _summary(task: TaskSummary, state: str) -> dict[str, Any]:
    data = dataclasses.asdict(task)
    data["state"] = state
    return data


def search(snapshot: ClusterSnapshot, text: str = "", state: str = "") -> list[dict[str, Any]]:
    """Tasks of the snapshot's lists whose id or name contains ``text``, in ``state`` if
    given (the lists hold what runs, waits and recently finished). Any part of an id, as
    task ids begin with their time (the same for hours) and end at random."""
    tasks = snapshot.tasks
    lists = ((states.PROCESSING, tasks.processing_tasks), (states.RETRYING, tasks.retrying_tasks),
             (states.SCHEDULED, tasks.scheduled_tasks), (states.SUCCESS, tasks.recent_successes),
             (states.FAILED, tasks.recent_failures))
    needle = text.strip().lower()
    found = []
    seen: set[str] = set()
    for list_state, items in lists:
        if state and state != list_state:
            continue
        for task in items:
            if task.task_id in seen:
                continue
            name = (task.name or "").lower()
            if needle and not (needle in task.task_id.lower() or needle in name):
                continue
            seen.add(task.task_id)
            found.append(_summary(task, list_state))
    return found


def dead_letters(app: YADTQ, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters with their reasons and calls."""
    found = []
    for letter in reversed(app.broker.list_dead_letters(limit)):
        call = _call(app, letter.body)
        found.append({"id": letter.id, "queue": letter.queue, "task": letter.task, "task_id": letter.task_id,
                      "reason": letter.reason, "timestamp": letter.timestamp, "call": call})
    return found


def schedules(app: YADTQ) -> list[dict[str, Any]]:
    """Periodic schedules, when this yadtq has them (``app.periodic_tasks()``), else none."""
    lister = getattr(app, "periodic_tasks", None)
    if lister is None:
        return []
    try:
        found = lister()
    except YADTQError:
        return []
    return [{"name": getattr(s, "name", str(s)), "next_run": getattr(s, "next_run", None),
             "paused": bool(getattr(s, "paused", False))} for s in found]
