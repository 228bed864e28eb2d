"""Helpers of the Redis backend's own tests (``test_redis_backend*.py``); their fixtures are
in ``conftest.py`` beside them."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from yadtq.transports.base import StateChange

DEADLINE = 10.0


def wait_for(condition: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


def success_change(task_id: str, ts: Optional[float] = None, worker: str = "w1") -> StateChange:
    return StateChange(task_id, "success", ts or time.time(), worker=worker, name="add", result=b"\x05")
