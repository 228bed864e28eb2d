"""Hooks: log every task's start and end, count failures, and set up each pool child.

Run a worker and send a few tasks (the hooks log to the worker's log)::

    yadtq worker -A examples.hooks_app --pool processes -c 2
    python examples/hooks_app.py
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from yadtq import YADTQ, signals

app = YADTQ("hooks-example")
logger = logging.getLogger("examples.hooks_app")
started: dict[str, float] = {}


@app.task(max_retries=0)
def divide(x: float, y: float) -> float:
    return x / y


@signals.task_prerun.connect
def on_start(task_id: str, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], **extra: Any) -> None:
    started[task_id] = time.monotonic()
    logger.info("starting %s%s", task.name, args)


@signals.task_postrun.connect
def on_end(task_id: str, task: Any, state: str, result: Any, **extra: Any) -> None:
    took = time.monotonic() - started.pop(task_id, time.monotonic())
    logger.info("%s ended %s in %.3f s: %r", task.name, state, took, result)


@signals.task_failure.connect
def on_failure(task_id: str, task: Any, exception: BaseException, traceback: str, **extra: Any) -> None:
    logger.warning("%s[%s] failed: %s", task.name, task_id, exception)  # e.g. sentry_sdk.capture_exception


@signals.worker_process_init.connect
def on_child(worker: str, **extra: Any) -> None:
    logger.info("pool child %d of %s ready", os.getpid(), worker)  # e.g. open a database connection


@signals.worker_ready.connect
def on_ready(worker: Any, **extra: Any) -> None:
    logger.info("worker %s ready", worker.name)


if __name__ == "__main__":
    print("6 / 3 =", divide.delay(6, 3).get(timeout=30))
    try:
        divide.delay(1, 0).get(timeout=30)
    except ZeroDivisionError as exc:
        print("1 / 0 failed:", exc)
