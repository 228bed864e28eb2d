"""Worker liveness as the app reports it: each worker's last heartbeat judged
``alive``, ``unresponsive`` or ``offline`` (``YADTQ.worker_state``), and the status
table ``YADTQ.get_worker_status`` returns."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import YADTQ
    from .transports.base import WorkerInfo

ALIVE, UNRESPONSIVE, OFFLINE = "alive", "unresponsive", "offline"


def judge(info: WorkerInfo, unresponsive_after: float) -> str:
    """``alive``, ``unresponsive`` (silent for more than ``unresponsive_after`` seconds,
    by the backend's clock) or ``offline`` (stopped cleanly) for one worker report."""
    if info.state == "stopped":
        return OFFLINE
    if info.silent > unresponsive_after:
        return UNRESPONSIVE
    return ALIVE


def status_table(app: YADTQ) -> dict[str, dict[str, Any]]:
    """Every worker ``app``'s backend knows, by name: its state as ``app.worker_state``
    judges it and the fields of its last heartbeat."""
    now = time.time()
    return {
        w.worker: {
            "status": app.worker_state(w, now),
            "last_heartbeat": w.last_heartbeat,
            "silent": w.silent,
            "tasks_done": w.tasks_done,
            "tasks_failed": w.tasks_failed,
            "active": w.active,
            "healthy": w.healthy,
            "hostname": w.hostname,
            "pid": w.pid,
            "queues": list(w.queues),
            "concurrency": w.concurrency,
            "started": w.started,
        }
        for w in sorted(app.backend.workers(), key=lambda info: info.worker)
    }
