"""Claim ahead (issue 9): a thread pool of sync tasks takes up to ``size`` more claimed
jobs than it has threads (``DEEP_AHEAD`` times that while its tasks are short), so the
worker claims the next batch while one runs; never more than ``size`` run at once, and
a job revoked while it waits for a thread never starts."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq import YADTQ, states
from yadtq.envelope import Envelope
from yadtq.transports.base import Delivery
from yadtq.worker.attempts import Pending
from yadtq.worker.consumer import RECLAIM_BEFORE_START_AFTER
from yadtq.worker.pools import DEEP_AHEAD, SHORT_TASK, Job, ThreadPool

from .helpers import wait_until
from .inprocess import task_consumer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app() -> Iterator[YADTQ]:
    app = YADTQ("ahead", broker="memory://", backend="memory://", heartbeat_interval=0.2,
                worker_unresponsive_after=30.0)
    try:
        yield app
    finally:
        app.close()


class _Consumer:
    """A consumer stand-in that owns every delivery and notes what was reported done."""

    def __init__(self) -> None:
        self.done_calls: list[list[Any]] = []

    def owns(self, delivery: Any) -> bool:
        return True

    def done(self, deliveries: Any) -> None:
        self.done_calls.append(list(deliveries))


def test_a_thread_pool_claims_ahead_but_runs_at_most_its_size(app: YADTQ) -> None:
    release = threading.Event()
    lock = threading.Lock()
    running, most = [0], [0]

    @app.task
    def hold() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(30)
        with lock:
            running[0] -= 1

    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    pool = ThreadPool(app, 2, "w", lambda job, outcome: done.put(outcome))
    pool.start()
    try:
        assert pool.free_slots() == 4, "two threads, two more claimed jobs waiting for them"
        for n in range(4):
            pool.submit(Job(Envelope(id=f"t{n}", task=hold.name), Delivery(body=b"", queue="default")))
        assert pool.free_slots() == 0
        wait_until(lambda: most[0] == 2, 10)
        release.set()
        outcomes = [done.get(timeout=10) for _ in range(4)]
        assert [o.state for o in outcomes] == [states.SUCCESS] * 4
        assert most[0] == 2, "more jobs ran at once than the pool has threads"
    finally:
        release.set()
        pool.stop()


def test_a_thread_pool_claims_deeper_while_its_tasks_are_short(app: YADTQ) -> None:
    @app.task
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    pool = ThreadPool(app, 2, "w", lambda job, outcome: done.put(outcome))
    pool.start()

    def run(count: int, seconds: float) -> None:
        for n in range(count):
            pool.submit(Job(Envelope(id=f"{seconds}-{n}", task=sleep.name, args=(seconds,)),
                            Delivery(body=b"", queue="default")))
            if n % 2:  # never more at once than the pool has room for
                done.get(timeout=10), done.get(timeout=10)

    try:
        assert pool.ahead == 2 and pool.free_slots() == 4, "tasks not seen yet count as long"
        run(10, SHORT_TASK * 3)
        assert pool.ahead == 2, "long tasks deepened the claim ahead"
        run(100, 0.0)
        assert pool.mean_run_time < SHORT_TASK
        assert pool.ahead == 2 * DEEP_AHEAD and pool.free_slots() == 2 + 2 * DEEP_AHEAD
        run(20, SHORT_TASK * 4)
        assert pool.mean_run_time >= SHORT_TASK
        assert pool.ahead == 2, "the claim ahead stayed deep once tasks grew long"
    finally:
        pool.stop()


def test_no_claim_ahead_with_async_tasks_or_spare_threads(app: YADTQ) -> None:
    @app.task
    def plain() -> None:
        pass

    pool = ThreadPool(app, 3, "w", lambda job, outcome: None)
    pool.start()
    try:
        assert pool.ahead == 3
        pool.resize(2)  # three threads stay: a waiting job would run on the spare one
        assert pool.ahead == 0 and pool.free_slots() == 2
        pool.resize(5)
        assert pool.ahead == 5 and pool.free_slots() == 10
    finally:
        pool.stop()

    @app.task
    async def coro() -> None:
        pass

    # Coroutines all run at once on the loop: claimed ahead, they would exceed the size.
    assert ThreadPool(app, 3, "w", lambda job, outcome: None).free_slots() == 3


def test_a_task_revoked_while_it_waits_for_a_thread_never_starts(app: YADTQ) -> None:
    release = threading.Event()
    ran: list[str] = []

    @app.task
    def work(name: str) -> str:
        ran.append(name)
        if name == "blocker":
            release.wait(30)
        return name

    consumer = _Consumer()
    with task_consumer(app, consumer, 1) as (tasks, pool):
        try:
            blocker = Envelope(id="blocker", task=work.name, args=("blocker",))
            victim = Envelope(id="victim", task=work.name, args=("victim",))
            victim_delivery = Delivery(body=b"", queue="default", token=2)
            tasks._claim_and_start([Pending(blocker, Delivery(body=b"", queue="default", token=1)),
                                    Pending(victim, victim_delivery)], app.now())
            assert len(pool.active()) == 2, "the victim is claimed ahead, waiting for the thread"
            wait_until(lambda: ran == ["blocker"], 10)
            # Past the thread hand-off the gate lets through unchecked: the victim waited.
            time.sleep(RECLAIM_BEFORE_START_AFTER * 5)
            app.AsyncResult("victim").revoke()  # claimed (processing), not started
            release.set()
            wait_until(lambda: not pool.active(), 10)
            # The owner thread takes the refused job back and settles it as any claim does.
            def settled() -> bool:
                tasks._take_back_returned()
                tasks.reclaim(1)
                return any(victim_delivery in call for call in consumer.done_calls)

            wait_until(settled, 10)
            assert ran == ["blocker"], "a task revoked while it waited for a thread started"
            assert app.AsyncResult("victim").state == states.REVOKED
            assert app.AsyncResult("blocker").get(timeout=10) == "blocker"
        finally:
            release.set()
