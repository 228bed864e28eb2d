"""Tasks for the execution-control tests (async tasks, hooks, progress, cancelling, limits).

Loaded by real ``yadtq worker`` processes; side effects go to files under
``YADTQ_TEST_SIDE_EFFECTS`` so a test sees what ran in a worker.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Optional

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
def collector_state() -> list[int]:
    """The worker process's garbage collector: objects frozen, thresholds (collector.py)."""
    import gc

    return [gc.get_freeze_count(), *gc.get_threshold()]


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


def effect_count(name: str) -> int:
    path = Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@app.task(retry_delay=0.05, max_retries=3)
def flaky(key: str, failures: int) -> str:
    mark(key)
    if effect_count(key) <= failures:
        raise ConnectionError(f"attempt failed ({key})")
    return "recovered"


if os.environ.get("YADTQ_TEST_HOOKS"):  # only in the workers a hooks test starts
    from yadtq import signals

    @signals.task_prerun.connect
    def _broken(**extra: object) -> None:
        raise RuntimeError("a broken hook must not change the outcome")

    @signals.task_prerun.connect
    def _prerun(task_id: str, task: object, args: tuple[object, ...], kwargs: dict[str, object],
                **extra: object) -> None:
        mark("hooks", f"prerun {task_id} {getattr(task, 'name', '?')} {list(args)} {kwargs}")

    @signals.task_postrun.connect()
    def _postrun(task_id: str, task: object, args: object, kwargs: object, state: str, result: object,
                 **extra: object) -> None:
        mark("hooks", f"postrun {task_id} {state} {type(result).__name__}")

    @signals.task_success.connect
    def _success(task_id: str, task: object, result: object, **extra: object) -> None:
        mark("hooks", f"success {task_id} {result!r}")

    @signals.task_failure.connect
    def _failure(task_id: str, task: object, exception: BaseException, traceback: str,
                 **extra: object) -> None:
        mark("hooks", f"failure {task_id} {type(exception).__name__} {'Traceback' in traceback}")

    @signals.task_retry.connect
    def _retry(task_id: str, task: object, reason: BaseException, eta: float, **extra: object) -> None:
        mark("hooks", f"retry {task_id} {type(reason).__name__} {eta > 0}")

    @signals.worker_ready.connect
    def _ready(worker: object, **extra: object) -> None:
        mark("hooks", f"ready {getattr(worker, 'name', '?')} {os.getpid()}")

    @signals.worker_shutdown.connect
    def _shutdown(worker: object, **extra: object) -> None:
        mark("hooks", f"shutdown {getattr(worker, 'name', '?')}")

    @signals.worker_process_init.connect
    def _child(worker: str, **extra: object) -> None:
        mark("hooks", f"child {worker} {os.getpid()}")

    @signals.worker_process_init.connect
    def _broken_child(**extra: object) -> None:
        raise RuntimeError("a broken child hook is logged in the worker's log")


@app.task(bind=True)
def steps(self: Any, key: str, count: int, pause: float) -> int:
    """Report progress ``count`` times, ``pause`` seconds apart, until the file ``key.go`` exists
    (when ``count`` is 0: forever, so a test controls when it ends)."""
    done = 0
    while True:
        done += 1
        self.progress(done, count or None)
        if count and done >= count:
            break
        if (Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / f"{key}.go").exists():
            break
        time.sleep(pause)
    self.update_state("FINISHING", {"done": done, "note": "last step"})
    return done


@app.task(bind=True)
def chatty(self: Any, seconds: float) -> int:
    """Report progress as fast as it can for ``seconds``; returns how many reports it made."""
    made = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        made += 1
        self.progress(made, None)
    return made


@app.task(bind=True, max_retries=3)
def spin(self: Any, key: str) -> str:
    """Report progress until revoked (``Revoked`` from ``progress`` stops it), or 60 s."""
    mark(f"{key}.started")
    try:
        ends = time.monotonic() + 60
        while time.monotonic() < ends:
            self.progress(1, None)
            time.sleep(0.02)
        return "ran to the end"
    finally:
        mark(f"{key}.stopped")


@app.task(bind=True)
def polite(self: Any, key: str) -> str:
    """Check ``is_revoked()`` and stop early."""
    mark(f"{key}.started")
    ends = time.monotonic() + 60
    while time.monotonic() < ends and not self.is_revoked():
        time.sleep(0.02)
    mark(f"{key}.stopped")
    return "stopped early"


@app.task(max_retries=2)
def dies_once(key: str) -> str:
    """Its process is killed (as by the OOM killer) on the first attempt only."""
    if effect_count(key) == 0:
        mark(key)
        os.kill(os.getpid(), 9)
    return "survived"


@app.task(max_retries=3)
def sleeper(key: str) -> str:
    """Sleep 60 s without looking: only killing its process stops it."""
    mark(f"{key}.started")
    time.sleep(60)
    mark(f"{key}.finished")
    return key


@app.task(max_retries=3)
async def async_sleeper(key: str) -> str:
    mark(f"{key}.started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        mark(f"{key}.cancelled")
        raise
    mark(f"{key}.finished")
    return key


@app.task(soft_time_limit=0.5)
def soft_loop(key: str) -> str:
    """Short sleeps: a soft limit reaches it on every pool (threads: between two sleeps)."""
    from yadtq import SoftTimeLimitExceeded

    mark(f"{key}.started")
    try:
        for _ in range(1200):
            time.sleep(0.05)
    except SoftTimeLimitExceeded:
        mark(f"{key}.caught")
        return "cleaned up"
    return "ran to the end"


@app.task(soft_time_limit=0.5)
def soft_block(key: str) -> str:
    """One long blocking sleep: only a signal (process pool) interrupts it."""
    from yadtq import SoftTimeLimitExceeded

    mark(f"{key}.started")
    try:
        time.sleep(60)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "ran to the end"


@app.task(soft_time_limit=0.5)
async def soft_async(key: str) -> str:
    from yadtq import SoftTimeLimitExceeded

    mark(f"{key}.started")
    try:
        await asyncio.sleep(60)
    except SoftTimeLimitExceeded:
        await asyncio.sleep(0.01)  # the coroutine goes on after catching it
        return "cleaned up"
    return "ran to the end"


@app.task(soft_time_limit=0.3, max_retries=3)
async def soft_uncaught(key: str) -> str:
    mark(f"{key}.started")
    await asyncio.sleep(60)
    return "ran to the end"


_hoard: list[bytearray] = []


@app.task
def pid_of(n: int) -> int:
    mark("pid_of", f"{n} {os.getpid()}")
    return os.getpid()


@app.task
def hog(megabytes: int) -> int:
    """Keep ``megabytes`` more of memory for good (a leak); returns the process id."""
    block = bytearray(megabytes * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
    _hoard.append(block)
    return os.getpid()
