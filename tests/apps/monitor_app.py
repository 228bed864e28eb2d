"""An in-process app for the monitor tests: ``-A tests.apps.monitor_app`` (memory://).

``slow`` blocks until ``gate`` is set, so a test controls what is in progress.
"""

from __future__ import annotations

import threading
from typing import Any

from yadtq import YADTQ

app = YADTQ("monitor-test", broker="memory://", backend="memory://")

#: Set to let every ``slow`` task finish.
gate = threading.Event()


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(max_retries=0)
def fail(message: str) -> None:
    raise ValueError(message)


@app.task
def slow(key: str) -> str:
    gate.wait(60)
    return key


@app.task(bind=True)
def later(self: Any) -> None:
    self.retry(countdown=300)
