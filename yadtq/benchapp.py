"""The app ``yadtq bench`` runs: a no-op task and an add task, on whatever transports
``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL`` name."""

from __future__ import annotations

from yadtq import YADTQ

app = YADTQ("bench")


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: measures the queue, not the task."""


@app.task(name="bench.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="bench.sink")
def sink(payload: bytes) -> None:
    """Takes a payload and returns nothing: measures moving it (``benchmarks/scaling.py``)."""
