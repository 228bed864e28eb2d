"""A process pool replaces a child killed for its time limit before the slot is free:
a task handed to the pool the moment the killed task's outcome is out must reach a
live child (it used to find the dead one idle, race the collector for its place, and
could leave the pool without a collector)."""

from __future__ import annotations

import queue
import time

import pytest

from yadtq import YADTQ, states
from yadtq.envelope import Envelope
from yadtq.transports.base import Delivery
from yadtq.worker.executor import Outcome
from yadtq.worker.pools import Job
from yadtq.worker.process_pool import ProcessPool

pytestmark = pytest.mark.timeout(60)

app = YADTQ("pool-replace", broker_url="memory://", backend_url="memory://")


@app.task(time_limit=0.3, max_retries=0)
def too_slow() -> None:
    time.sleep(30)


@app.task
def quick() -> str:
    return "still working"


def _job(task: str, task_id: str) -> Job:
    return Job(Envelope(id=task_id, task=task), Delivery(b"", "celery"))


def test_a_task_submitted_as_a_killed_task_ends_runs_on_a_fresh_child() -> None:
    outcomes: queue.SimpleQueue[tuple[str, Outcome]] = queue.SimpleQueue()
    pool: ProcessPool

    def sink(job: Job, outcome: Outcome) -> None:
        outcomes.put((job.envelope.id, outcome))
        if job.envelope.id == "slow":  # at once, on the collector's own thread
            pool.submit(_job(quick.name, "quick"))

    pool = ProcessPool(app, 1, "w", sink)
    pool.start()
    try:
        pid = pool._children[0].process.pid
        pool.submit(_job(too_slow.name, "slow"))
        got = dict(outcomes.get(timeout=30) for _ in range(2))
        assert got["slow"].state == states.FAILED and "time limit" in str(got["slow"].error)
        assert got["quick"].state == states.SUCCESS, got["quick"].error
        assert pool._children[0].process.pid != pid
        assert pool._collector is not None and pool._collector.is_alive()
    finally:
        pool.stop()
