"""The worker logs every lifecycle, connection and task event, with task fields."""

from __future__ import annotations

import logging
import time

import pytest

from yadtq import YADTQ
from yadtq.exceptions import BackendUnavailable
from yadtq.transports.base import WorkerInfo
from yadtq.worker.links import Link
from yadtq.worker.main import Worker

from .helpers import wait_until


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_each_task_and_worker_event_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="yadtq")
    app = YADTQ("logs", broker="memory://", backend="memory://", heartbeat_interval=0.05,
                worker_unresponsive_after=0.2)
    app.backend.heartbeat(WorkerInfo(worker="ghost", instance="ghost#1", last_heartbeat=time.time() - 9))

    @app.task
    def fine() -> int:
        return 1

    @app.task(retry_delay=0.01, max_retries=1)
    def broken() -> None:
        raise ValueError("nope")

    worker = Worker(app, name="logger-worker").start()
    try:
        ok, bad = fine.delay(), broken.delay()
        assert ok.get(timeout=10) == 1
        with pytest.raises(ValueError):
            bad.get(timeout=10)
        wait_until(lambda: any("worker ghost failed" in m for m in messages(caplog)), timeout=5)
    finally:
        worker.stop(10)
    text = "\n".join(messages(caplog))
    for event in ("connected to broker memory://", "connected to backend memory://",
                  "worker logger-worker joined", f"[{ok.id}] received", f"[{ok.id}] started",
                  f"[{ok.id}] succeeded in", f"[{bad.id}] retrying (attempt 1)",
                  f"[{bad.id}] failed in", "worker ghost failed: unresponsive",
                  "worker logger-worker left (1 done, 1 failed)"):
        assert event in text, event
    task_records = [r for r in caplog.records if getattr(r, "task_id", None) == ok.id]
    assert {r.getMessage().split("] ")[1].split()[0] for r in task_records} >= {"received", "started",
                                                                               "succeeded"}
    assert all(getattr(r, "task", None) == fine.name for r in task_records)
    failed = next(r for r in caplog.records if getattr(r, "task_id", None) == bad.id
                  and "failed in" in r.getMessage())
    assert "ValueError: nope" in failed.traceback  # type: ignore[attr-defined]
    assert failed.duration >= 0  # type: ignore[attr-defined]


def test_a_link_logs_lost_once_and_restored_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="yadtq")
    link = Link("backend", "redis://127.0.0.1:6379/0")
    link.ok()
    for _ in range(3):
        link.failed(BackendUnavailable("connection refused"))
    assert not link.up
    link.ok()
    link.ok()
    assert link.up
    assert messages(caplog) == [
        "connected to backend redis://127.0.0.1:6379/0",
        "backend connection lost: connection refused",
        messages(caplog)[2],
    ]
    assert messages(caplog)[2].startswith("backend connection restored after ")
