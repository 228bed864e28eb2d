"""Helpers of the result backend contract tests (``test_backend_*contract.py``)."""

from __future__ import annotations

import time
import uuid
from typing import Optional

from yadtq.transports.base import (
    Claim,
    Message,
    ResultBackend,
    ScheduledMessage,
    TaskRecord,
    WorkerInfo,
)

DEADLINE = 20.0


def new_id() -> str:
    return str(uuid.uuid4())


def claim_for(task_id: str, *, instance: str = "inst-1", worker: str = "w1",
              retries: int = 0, created: float = 0.0) -> Claim:
    return Claim(task_id=task_id, name="tests.add", queue="default", retries=retries,
                 instance=instance, worker=worker, timestamp=time.time(), created=created)


def beat(backend: ResultBackend, worker: str, instance: str, *, age: float = 0.0,
         state: str = "running", resumed: bool = False) -> WorkerInfo:
    info = WorkerInfo(worker=worker, instance=instance, hostname="host", pid=42,
                      queues=("default",), concurrency=2, pool="threads", started=time.time() - 60,
                      last_heartbeat=time.time() - age, state=state, resumed=resumed)
    backend.heartbeat(info)
    return info


def get_one(backend: ResultBackend, task_id: str) -> Optional[TaskRecord]:
    return backend.get([task_id])[0]


#: A short liveness window for tests that wait for a worker to be judged dead.
SHORT = {"worker_unresponsive_after": 0.6, "heartbeat_interval": 0.2}


def scheduled(task_id: str, due: float, queue: str = "default") -> ScheduledMessage:
    body = f"body-{task_id}".encode()
    return ScheduledMessage(task_id, due, Message(queue, body, key=task_id.encode(),
                                                  headers={"yadtq-task": b"tests.add"}))
