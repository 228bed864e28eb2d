"""Tasks for the execution-control tests (async tasks, hooks, progress, cancelling, limits).

Loaded by real ``yadtq worker`` processes; side effects go to files under
``YADTQ_TEST_SIDE_EFFECTS`` so a test sees what ran in a worker.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Optional

from yadtq import YADTQ

app = YADTQ("exec")

_running = 0
_peak = 0
_crowd: Optional[asyncio.Event] = None


def mark(name: str, text: str = "") -> None:
    """Append a line to ``<side effects>/<name>``."""
    with (Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / name).open("a") as f:
        f.write(f"{text or os.getpid()}\n")


@app.task
async def nap(seconds: float, value: int) -> int:
    await asyncio.sleep(seconds)
    return value


@app.task
async def crowd(size: int, timeout: float) -> int:
    """Wait until ``size`` of these run at once on this worker's loop (or ``timeout``);
    returns the most that ran at once."""
    global _running, _peak, _crowd
    if _crowd is None:
        _crowd = asyncio.Event()
    _running += 1
    _peak = max(_peak, _running)
    if _peak >= size:
        _crowd.set()
    try:
        await asyncio.wait_for(_crowd.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        _running -= 1
    return _peak


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def blocking_add(x: int, y: int, seconds: float) -> int:
    time.sleep(seconds)
    return x + y


@app.task(time_limit=0.5, max_retries=0)
async def hangs(key: str) -> str:
    mark(f"{key}.started")
    await asyncio.sleep(60)
    mark(f"{key}.finished")
    return key


@app.task(max_retries=0)
async def async_fails(message: str) -> None:
    await asyncio.sleep(0)
    raise LookupError(message)
