"""The example app: four arithmetic tasks on the configured transports.

Set ``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL`` to use Kafka and Redis; without
them it uses the embedded SQLite default (``yadtq.db`` in the current directory).
``MATH_APP_DELAY`` adds a simulated processing time, in seconds, to every task.
"""

from __future__ import annotations

import os
import time

from yadtq import YADTQ

app = YADTQ("math")


def _simulate_work() -> None:
    delay = float(os.environ.get("MATH_APP_DELAY", "0"))
    if delay > 0:
        time.sleep(delay)


@app.task
def add(x: float, y: float) -> float:
    """x + y."""
    _simulate_work()
    return x + y


@app.task
def sub(x: float, y: float) -> float:
    """x - y."""
    _simulate_work()
    return x - y


@app.task
def multiply(x: float, y: float) -> float:
    """x * y."""
    _simulate_work()
    return x * y


@app.task(max_retries=0)
def divide(x: float, y: float) -> float:
    """x / y; dividing by zero fails at once with ZeroDivisionError (no retries)."""
    _simulate_work()
    return x / y


if __name__ == "__main__":
    print(add.delay(2, 3).get(timeout=10))
