"""Tasks for multi-process tests. Side effects are counted in files under
``YADTQ_TEST_SIDE_EFFECTS`` so a test can see what ran in worker processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from yadtq import YADTQ

app = YADTQ("proc")


def _mark(name: str) -> int:
    """Append one line to ``<dir>/<name>`` and return how many lines it has now."""
    path = Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / name
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def whoami(n: int) -> int:
    _mark(f"whoami-{n}")
    return os.getpid()


@app.task(retry_delay=0.05)
def flaky(key: str, failures: int) -> str:
    if _mark(key) <= failures:
        raise ConnectionError(f"attempt failed ({key})")
    return "recovered"


@app.task(retry_delay=0.05)
def always_fails(key: str) -> None:
    _mark(key)
    raise LookupError(f"nothing for {key}")


@app.task(max_retries=0)
def divide(x: float, y: float) -> float:
    return x / y


@app.task
def slow(key: str, seconds: float) -> str:
    _mark(f"{key}.started")
    time.sleep(seconds)
    _mark(f"{key}.finished")
    return f"slept {seconds}"


@app.task
def record_time(key: str) -> float:
    _mark(key)
    return time.time()


@app.task(retry_delay=0.05)
def dies_once(key: str) -> int:
    """Killed by SIGKILL (as by the OOM killer) on its first attempt."""
    if _mark(key) <= 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@app.task
def slow_pid(key: str, seconds: float) -> int:
    _mark(f"{key}.started")
    time.sleep(seconds)
    _mark(f"{key}.finished")
    return os.getpid()
