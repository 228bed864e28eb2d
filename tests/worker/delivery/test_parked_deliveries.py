"""BUSY claims park their delivery until the holder is dead or done (case 1), attempts are
told apart (case 2), and parked deliveries across reclaims, revocations and stops."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from yadtq import YADTQ, states
from yadtq.envelope import Envelope, pack
from yadtq.transports.base import StateChange
from yadtq.worker.main import Worker

from ..helpers import wait_until
from ..inprocess import task_consumer
from .support import Owning, Runs, ghost_beat, held_by_ghost, publish

pytestmark = pytest.mark.timeout(60)


def test_busy_delivery_is_parked_and_runs_once_its_holder_is_dead(app: YADTQ) -> None:
    runs = Runs()

    @app.task
    def job(x: int) -> int:
        runs.hit(x)
        return x

    held = Envelope(id="held-task", task=job.name, args=(1,))
    held_by_ghost(app, held)
    worker = Worker(app, name="w", concurrency=2).start()
    try:
        publish(app, held)
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 1, 10)
        # Parked: neither run nor reported done, and it blocks nothing behind it.
        assert [job.delay(n).get(timeout=10) for n in range(2, 12)] == list(range(2, 12))
        assert runs.count(1) == 0 and worker._consumer.in_flight() == 1
        assert app.AsyncResult(held.id).state == states.PROCESSING
        ghost_beat(app, age=60)  # its last heartbeat: silent from now on, it is found dead
        died = time.monotonic()
        assert app.AsyncResult(held.id).get(timeout=15) == 1
        # within worker_unresponsive_after (2 s) plus a reclaim interval (0.2 s) and slack
        assert time.monotonic() - died < 6
        assert runs.count(1) == 1
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 0, 10)
    finally:
        worker.stop(10)


def test_busy_delivery_is_done_once_its_holder_stores_the_outcome(app: YADTQ) -> None:
    runs = Runs()

    @app.task
    def job(x: int) -> int:
        runs.hit(x)
        return x

    held = Envelope(id="held-task-2", task=job.name, args=(7,))
    held_by_ghost(app, held)
    stop = threading.Event()

    def keep_ghost_alive() -> None:
        while not stop.wait(0.2):
            ghost_beat(app)

    beater = threading.Thread(target=keep_ghost_alive, daemon=True)
    beater.start()
    worker = Worker(app, name="w2", concurrency=2).start()
    try:
        publish(app, held)
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 1, 10)
        time.sleep(0.5)  # a few reclaim rounds while the ghost lives: still parked
        assert worker._consumer.in_flight() == 1 and runs.count(7) == 0
        app.backend.record([StateChange(held.id, states.SUCCESS, time.time(), worker="ghost",
                                        result=pack(70))])
        wait_until(lambda: worker._consumer.in_flight() == 0, 10)  # type: ignore[union-attr]
        assert runs.count(7) == 0 and app.AsyncResult(held.id).get(timeout=1) == 70
    finally:
        stop.set()
        worker.stop(10)


def test_stop_leaves_a_parked_delivery_unfinished(app: YADTQ) -> None:
    @app.task
    def job(x: int) -> int:
        return x

    held = Envelope(id="held-task-3", task=job.name, args=(3,))
    held_by_ghost(app, held)
    worker = Worker(app, name="w3", concurrency=1).start()
    publish(app, held)
    wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 1, 10)
    worker.stop(10)
    # memory:// puts unfinished deliveries back: nothing reported it done
    consumer = app.broker.consumer([held.queue])
    try:
        taken = consumer.fetch(10, 2.0)
        assert [d.headers.get("yadtq-id") for d in taken] == [held.id.encode()]
    finally:
        consumer.close()


def test_attempt_and_retry_in_one_batch_are_told_apart(app: YADTQ) -> None:
    runs = Runs()

    @app.task
    def flaky(x: int) -> int:
        runs.hit(x)
        return x

    first = Envelope(id="two-attempts", task=flaky.name, args=(5,))
    retry = first.next_attempt(eta=0.0)
    # Attempt 0 is spent (it failed and scheduled attempt 1): as the worker records it.
    app.backend.record([StateChange(first.id, states.RETRYING, time.time(), retries=1)])
    publish(app, first)
    publish(app, retry)
    publish(app, first)  # a redelivery of the old attempt, in the same batch
    worker = Worker(app, name="w5", concurrency=4).start()
    try:
        assert app.AsyncResult(first.id).get(timeout=10) == 5
        assert runs.count(5) == 1
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 0, 10)
    finally:
        worker.stop(10)


def test_reclaim_keeps_a_delivery_that_arrived_after_its_partition_came_back(app: YADTQ) -> None:
    """A parked attempt whose first delivery was revoked, then delivered again under a new
    assignment, is kept with the new delivery (else that offset would never be done)."""
    from yadtq.transports.base import Delivery
    from yadtq.worker.attempts import Identity, Pending, WorkerStats
    from yadtq.worker.consumer import TaskConsumer

    @app.task
    def job(x: int) -> int:
        return x

    consumer = Owning()
    tasks = TaskConsumer(app, consumer, None, Identity("w", "w#1"), WorkerStats(),  # type: ignore[arg-type]
                         None, threading.Event())  # type: ignore[arg-type]
    envelope = Envelope(id="gen", task=job.name)
    old = Delivery(body=b"", queue="default", token=1)
    new = Delivery(body=b"", queue="default", token=2)
    tasks._parked[("gen", 0)] = Pending(envelope, old, [new])
    tasks._parked[("gone", 0)] = Pending(Envelope(id="gone", task=job.name), old)
    tasks.reclaim(0)  # no free slot: only prunes
    assert list(tasks._parked) == [("gen", 0)]
    assert tasks._parked[("gen", 0)].deliveries() == [new]


def test_a_parked_task_is_logged_once_however_often_it_is_claimed_again(
        app: YADTQ, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    def job(x: int) -> int:
        return x

    held = Envelope(id="held-quiet", task=job.name, args=(5,))
    held_by_ghost(app, held)
    stop = threading.Event()

    def keep_ghost_alive() -> None:
        while not stop.wait(0.1):
            ghost_beat(app)

    beater = threading.Thread(target=keep_ghost_alive, daemon=True)
    beater.start()
    caplog.set_level("INFO", logger="yadtq.worker.consumer")
    worker = Worker(app, name="wq", concurrency=2).start()
    try:
        publish(app, held)
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 1, 10)
        time.sleep(1.5)  # several reclaim rounds (every 0.2 s) while the ghost lives
        waiting = [r for r in caplog.records if "runs on another live worker" in r.getMessage()]
        assert len(waiting) == 1, [r.getMessage() for r in waiting]
        assert worker._consumer.in_flight() == 1
    finally:
        stop.set()
        worker.stop(10)



class _Revoking(Owning):
    """Deliveries of token 1 are on a partition being revoked now; token 2's stays."""

    def owns(self, delivery: Any) -> bool:
        return bool(delivery.token == 2)

    def revoking(self, delivery: Any) -> bool:
        return bool(delivery.token == 1)


def test_a_revocation_drain_releases_parked_deliveries_and_waits_only_for_its_own_jobs(
        app: YADTQ) -> None:
    """The drain of revoked partitions waits for their running jobs only: a parked delivery
    of theirs is released at once (its task runs elsewhere), and a long job of a partition
    this worker keeps is not waited for."""
    from yadtq.transports.base import Delivery
    from yadtq.worker.attempts import Pending

    release = threading.Event()

    @app.task
    def job(seconds: float) -> float:
        if seconds > 1:
            release.wait(30)
        else:
            time.sleep(seconds)
        return seconds

    consumer = _Revoking()
    with task_consumer(app, consumer, 3) as (tasks, pool):
        try:
            held = Envelope(id="parked-revoked", task=job.name, args=(0.0,))
            held_by_ghost(app, held)
            long_kept = Envelope(id="long-kept", task=job.name, args=(30.0,))
            short_revoked = Envelope(id="short-revoked", task=job.name, args=(0.3,))
            tasks._claim_and_start([Pending(held, Delivery(body=b"", queue="default", token=1)),
                                    Pending(long_kept, Delivery(body=b"", queue="default", token=2)),
                                    Pending(short_revoked, Delivery(body=b"", queue="default", token=1))],
                                   app.now())
            assert tasks.parked == 1 and len(pool.active()) == 2
            began = time.monotonic()
            tasks.drain(10.0)
            took = time.monotonic() - began
            assert tasks.parked == 0, "the parked delivery of a revoked partition was kept"
            assert app.AsyncResult(short_revoked.id).get(timeout=1) == 0.3, \
                "drained before its job was stored"
            assert any(d.token == 1 for done in consumer.done_calls for d in done)
            assert took < 8, f"the drain waited {took:.1f} s for a job of a partition it keeps"
            assert app.AsyncResult(long_kept.id).state == states.PROCESSING
        finally:
            release.set()


def test_a_stop_abandons_a_task_after_shutdown_timeout_without_waiting_again() -> None:
    """Shutdown waits ``shutdown_timeout`` for running tasks, then stores what finished and
    leaves: it does not wait for the abandoned task a second time."""
    app = YADTQ("stopping", broker="memory://", backend="memory://", heartbeat_interval=0.2,
                shutdown_timeout=0.5)
    release = threading.Event()

    @app.task
    def stuck() -> None:
        release.wait(30)

    worker = Worker(app, name="ws", concurrency=1).start()
    try:
        result = stuck.delay()
        wait_until(lambda: app.AsyncResult(result.id).state == states.PROCESSING, 10)
        began = time.monotonic()
        worker.stop(20)
        took = time.monotonic() - began
        assert took < 4, f"stopping took {took:.1f} s with shutdown_timeout 0.5 s"
    finally:
        release.set()
        app.close()
