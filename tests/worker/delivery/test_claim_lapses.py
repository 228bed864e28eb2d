"""A task whose claim lapsed, or whose grant was read after a freeze, does not start."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable

import pytest

from yadtq import YADTQ, states
from yadtq.envelope import Envelope
from yadtq.transports.base import RUN, Claim, StateChange

from ..helpers import wait_until
from .support import Owning, Runs

pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass
class _PoolRig:
    """A task consumer over a pool (not started), a consumer stand-in, and ``job(x)``,
    whose runs are counted."""

    runs: Runs
    job: Any
    outcomes: list[Any]
    pool: Any
    consumer: Owning
    tasks: Any


def _pool_rig(app: YADTQ, kind: str = "threads") -> _PoolRig:
    import queue as queue_module

    from yadtq.worker.aio import AsyncioPool
    from yadtq.worker.attempts import Identity, WorkerStats
    from yadtq.worker.consumer import TaskConsumer
    from yadtq.worker.pools import ThreadPool

    runs = Runs()

    @app.task
    def job(x: int) -> int:
        runs.hit(x)
        return x

    outcomes: list[Any] = []
    pool_class = ThreadPool if kind == "threads" else AsyncioPool
    pool = pool_class(app, 2, "w", lambda j, o: outcomes.append(o))
    consumer = Owning()
    tasks = TaskConsumer(app, consumer, pool, Identity("w", "w#1"), WorkerStats(),  # type: ignore[arg-type]
                         queue_module.SimpleQueue(), threading.Event())
    return _PoolRig(runs, job, outcomes, pool, consumer, tasks)


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_job_whose_claim_lapsed_before_it_started_does_not_run(app: YADTQ, kind: str) -> None:
    """A worker frozen between claim and start (SIGSTOP, starvation) must not start the task
    once its claim may have lapsed: meanwhile another worker found it dead, ran the task and
    stored its outcome. The job is claimed again instead (here: SKIP, the delivery is done)."""
    from yadtq.transports.base import Delivery
    from yadtq.worker.attempts import Pending

    rig = _pool_rig(app, kind)  # its pool not started: frozen
    tasks = rig.tasks
    envelope = Envelope(id="lapsed", task=rig.job.name, args=(7,))
    delivery = Delivery(body=b"", queue="default", token=2)
    tasks._claim_and_start([Pending(envelope, delivery)], app.now())
    assert rig.pool.active(), "claimed and handed to the pool"
    # w#1 never beat, so it counts as dead: another worker takes the task over and finishes it.
    other = Claim(envelope.id, envelope.task, envelope.queue, 0, "other#1", "other", app.now())
    assert app.backend.claim([other]) == [RUN]
    app.backend.record([StateChange(envelope.id, states.SUCCESS, app.now(), worker="other")])
    time.sleep(tasks.stale_claim_after + 0.1)
    rig.pool.start()  # the frozen worker wakes up
    wait_until(lambda: not rig.pool.active(), 10)
    tasks._take_back_returned()
    tasks.reclaim(2)
    assert rig.runs.count(7) == 0 and not rig.outcomes, "the lapsed claim ran the task a second time"
    assert [delivery] in rig.consumer.done_calls
    rig.pool.stop()


def _claim_through(app: YADTQ, monkeypatch: pytest.MonkeyPatch,
                   claim: Callable[[Any, list[Claim], Callable[..., list[str]]], list[str]],
                   ) -> tuple[int, list[Any], Any]:
    """Claim and start one task (``job(7)``) on a started thread pool, the first claim
    going through ``claim(tasks, claims, granted)`` (``granted``: the backend's own);
    then settle what came back. Returns how often the task ran, the pool's outcomes
    and the consumer stand-in."""
    from yadtq.transports.base import Delivery
    from yadtq.worker.attempts import Pending

    rig = _pool_rig(app)
    granted = app.backend.claim
    monkeypatch.setattr(app.backend, "claim", lambda claims: claim(rig.tasks, claims, granted))
    rig.pool.start()
    try:
        envelope = Envelope(id="claimed-once", task=rig.job.name, args=(7,))
        rig.tasks._claim_and_start([Pending(envelope, Delivery(body=b"", queue="default", token=2))],
                                   app.now())
        monkeypatch.setattr(app.backend, "claim", granted)
        wait_until(lambda: not rig.pool.active(), 10)
        rig.tasks._take_back_returned()
        rig.tasks.reclaim(2)
        wait_until(lambda: not rig.pool.active(), 10)
    finally:
        rig.pool.stop()
    return rig.runs.count(7), rig.outcomes, rig.consumer


def test_a_claim_whose_grant_was_read_after_a_freeze_does_not_run(app: YADTQ,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker frozen while its claim request was out (SIGSTOP after sending it) reads
    the grant on waking. Meanwhile another worker found it dead, ran the task and stored
    its outcome: the claim's age counts from the asking, so it is claimed again (SKIP)."""

    def claim_then_freeze(tasks: Any, claims: list[Claim], granted: Callable[..., list[str]]) -> list[str]:
        decisions = granted(claims)
        # w#1 never beat, so it counts as dead: another worker takes over and finishes.
        other = dataclasses.replace(claims[0], instance="other#1", worker="other", timestamp=app.now())
        assert granted([other]) == [RUN]
        app.backend.record([StateChange(other.task_id, states.SUCCESS, app.now(), worker="other")])
        time.sleep(tasks.stale_claim_after + 0.1)  # the reply waits for the thaw
        return decisions

    ran, outcomes, consumer = _claim_through(app, monkeypatch, claim_then_freeze)
    assert ran == 0 and not outcomes, "the late grant ran the task a second time"
    assert len(consumer.done_calls) == 1, "the finished task's delivery is done"


def test_a_claim_granted_after_an_outage_runs_without_claiming_again(
        app: YADTQ, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Claims retried through a backend outage longer than ``stale_claim_after``: the age
    counts from the try that was answered, so the job starts at once, run once."""
    from yadtq.exceptions import BackendUnavailable

    tries: list[float] = []

    def down_then_up(tasks: Any, claims: list[Claim], granted: Callable[..., list[str]]) -> list[str]:
        tasks.stale_claim_after = 0.25
        tries.append(time.monotonic())
        if len(tries) < 3:  # persist retries after 0.1 s, then 0.2 s
            raise BackendUnavailable("down")
        return granted(claims)

    with caplog.at_level("WARNING", logger="yadtq.worker.consumer"):
        ran, outcomes, _ = _claim_through(app, monkeypatch, down_then_up)
    assert tries[-1] - tries[0] > 0.25, "the outage outlasted stale_claim_after"
    assert ran == 1 and len(outcomes) == 1
    assert not [r for r in caplog.records if "claiming it again" in r.getMessage()]


def test_a_claim_again_before_start_read_after_a_freeze_does_not_run(
        app: YADTQ, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that waited for a thread is claimed once more before it starts; a freeze
    while that claim is out (another worker runs the task meanwhile) sends it back to
    be claimed again instead of starting it (SKIP: finished elsewhere)."""
    from yadtq.transports.base import Delivery
    from yadtq.worker.attempts import Pending

    rig = _pool_rig(app)  # its pool not started: every thread busy
    tasks = rig.tasks
    tasks.stale_claim_after = 0.5
    envelope = Envelope(id="waited", task=rig.job.name, args=(7,))
    delivery = Delivery(body=b"", queue="default", token=2)
    tasks._claim_and_start([Pending(envelope, delivery)], app.now())
    time.sleep(0.1)  # waits for a thread: claimed once more before it starts
    granted = app.backend.claim

    def claim_then_freeze(claims: list[Claim]) -> list[str]:
        decisions = granted(claims)
        other = dataclasses.replace(claims[0], instance="other#1", worker="other", timestamp=app.now())
        assert granted([other]) == [RUN]  # w#1 never beat: it counts as dead
        app.backend.record([StateChange(envelope.id, states.SUCCESS, app.now(), worker="other")])
        time.sleep(tasks.stale_claim_after + 0.1)
        return decisions

    monkeypatch.setattr(app.backend, "claim", claim_then_freeze)
    rig.pool.start()
    try:
        wait_until(lambda: not rig.pool.active(), 10)
        monkeypatch.setattr(app.backend, "claim", granted)
        tasks._take_back_returned()
        tasks.reclaim(2)
    finally:
        rig.pool.stop()
    assert rig.runs.count(7) == 0 and not rig.outcomes, "the late grant ran the task a second time"
    assert [delivery] in rig.consumer.done_calls
