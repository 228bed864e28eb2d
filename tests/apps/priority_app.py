"""Tasks for the priority tests: each returns when it started."""

from __future__ import annotations

import time

from yadtq import YADTQ

app = YADTQ("priority")


@app.task
def step(n: int) -> float:
    """Returns the wall-clock time it started (one host: comparable across processes)."""
    started = time.time()
    time.sleep(0.001)
    return started


@app.task
def hold(seconds: float) -> float:
    """Sleeps ``seconds`` (a backlog that drains slowly); returns when it started."""
    started = time.time()
    time.sleep(seconds)
    return started
