"""Operator commands on Kafka + Redis: retry a failed task, requeue a dead letter from
``yadtq.dlq``, and resize a worker's pool through the control channel in Redis."""

from __future__ import annotations

import time

import pytest

from yadtq import states
from yadtq.operations import control, find_dead_letters, requeue_dead_letters, retry
from yadtq.worker.main import Worker

from .conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(180)]


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_retry_requeue_and_control(cluster: Cluster) -> None:
    app, module = cluster.app, cluster.module
    worker = Worker(app, name=f"ops-{cluster.queue}", concurrency=2).start()
    try:
        # retry: fails all 6 attempts (max_retries=5), then the retry under a new id succeeds
        failed = module.flaky.delay(f"{cluster.counters}-flaky", 6)
        wait_until(lambda: failed.state == states.FAILED, 90, "the task to fail")
        new_id = retry(app, failed.id)
        assert app.AsyncResult(new_id).get(timeout=60) == "recovered"
        # dead letter: a task no worker registers, requeued once the worker has it
        name = module.add.name
        task = app.tasks.pop(name)
        try:
            lost = module.add.delay(20, 22)
            # recorded failed first, then dead-lettered
            wait_until(lambda: any(d.task_id == lost.id for d in app.broker.list_dead_letters(10_000)),
                       60, "the dead letter")
            (letter,) = find_dead_letters(app, [lost.id])
            assert letter.reason == f"task {name!r} is not registered"
            assert letter.queue == cluster.queue
        finally:
            app.tasks[name] = task
        assert [d.id for d in requeue_dead_letters(app, [letter])] == [letter.id]
        assert lost.get(timeout=60) == 42
        assert all(d.id != letter.id for d in app.broker.list_dead_letters(10_000))
        # control: grow the pool through Redis
        wait_until(lambda: any(w.worker == worker.name for w in app.backend.workers()), 30, "a heartbeat")
        assert control(app, "pool-grow", n=2, worker=worker.name) == [worker.name]
        wait_until(lambda: worker.concurrency == 4, 30, "the pool to grow")
    finally:
        worker.stop(timeout=60)
