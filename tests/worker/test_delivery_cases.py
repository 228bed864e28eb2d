"""Issue 8's consumer-side cases on memory://: BUSY claims park their delivery (case 1),
attempts are told apart (case 2), any bad message is dead-lettered and the batch goes on
(case 4). The same paths run against real Kafka+Redis in tests/integration."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from yadtq import YADTQ, states
from yadtq.envelope import PROTOCOL_VERSION, Envelope, encode, pack
from yadtq.transports.base import RUN, Claim, Message, StateChange, WorkerInfo
from yadtq.worker.main import Worker

from .helpers import wait_until
from .inprocess import task_consumer

pytestmark = pytest.mark.timeout(60)

GHOST = "ghost#1"


@pytest.fixture
def app() -> Iterator[YADTQ]:
    app = YADTQ("cases", broker="memory://", backend="memory://", heartbeat_interval=0.2,
                worker_unresponsive_after=2.0)
    try:
        yield app
    finally:
        app.close()


class Runs:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Any] = []

    def hit(self, value: Any) -> None:
        with self.lock:
            self.calls.append(value)

    def count(self, value: Any) -> int:
        with self.lock:
            return self.calls.count(value)


def ghost_beat(app: YADTQ, age: float = 0.0) -> None:
    app.backend.heartbeat(WorkerInfo(worker="ghost", instance=GHOST, last_heartbeat=time.time() - age))


def held_by_ghost(app: YADTQ, envelope: Envelope) -> None:
    """The task is ``processing`` on a live other instance (e.g. the partition's old owner)."""
    ghost_beat(app)
    claim = Claim(envelope.id, envelope.task, envelope.queue, envelope.retries, GHOST, "ghost",
                  time.time())
    assert app.backend.claim([claim], time.time() - 60) == [RUN]


def publish(app: YADTQ, envelope: Envelope) -> None:
    app.broker.publish([Message(envelope.queue, encode(envelope), envelope.routing_key(),
                                envelope.headers())])


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


def _raw(body: dict[str, Any]) -> bytes:
    return pack(body)


def bad_messages(task: str) -> list[tuple[str, bytes]]:
    def body(**fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": "victim", "task": task, "args": [1]}
        out.update(fields)
        return out

    return [
        ("decimal", b"\x82\xa1v\x01\xa4args\x91\xd5\x04zz"),  # Decimal ext with text "zz"
        ("time_limit", _raw(body(options={"time_limit": "soon"}))),
        ("max_retries", _raw(body(options={"max_retries": "many"}))),
        ("queue", _raw(body(queue=5))),
        ("key", _raw(body(key=["k"]))),
        ("options", _raw(body(options=[1, 2]))),
        ("retries", _raw(body(retries="x"))),
        ("eta", _raw(body(eta="tomorrow"))),
        ("bad-utf8", b"\x83\xa1v\x01\xa2id\xa2ok\xa4task\xa3\xff\xfe\xfd"),
        ("version", _raw(body(v=True))),
    ]


def test_bad_messages_are_dead_lettered_and_the_batch_goes_on(app: YADTQ) -> None:
    runs = Runs()

    @app.task
    def job(x: int) -> int:
        runs.hit(x)
        return x

    bad = bad_messages(job.name)
    for _, data in bad:
        app.broker.publish([Message("default", data)])
    after = [job.delay(n) for n in range(100, 105)]
    worker = Worker(app, name="w6", concurrency=2, pool="threads").start()
    try:
        assert [r.get(timeout=10) for r in after] == list(range(100, 105))
        wait_until(lambda: len(app.broker.dead_letters()) == len(bad), 10)
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 0, 10)
        assert runs.count(1) == 0
        # Unverified ids are never failed: each rejection has a dead-letter id of its own.
        assert app.AsyncResult("victim").state != states.FAILED
        failures = app.backend.snapshot().recent_failures
        assert len([f for f in failures if f.task_id.startswith("dlq-")]) == len(bad)
    finally:
        worker.stop(10)


def _signed_with(secret: Optional[str]) -> YADTQ:
    return YADTQ("s", broker="memory://", backend="memory://", secret_key=secret)


def test_signed_but_invalid_message_fails_its_own_task() -> None:
    """A verified signature vouches for the id: the submitter learns why its task failed."""
    app = _signed_with("k")
    try:
        @app.task
        def job(x: int) -> int:
            return x

        envelope = Envelope(id="signed-bad", task=job.name, args=(1,), options={"time_limit": "soon"})
        app.broker.publish([Message("default", encode(envelope, "k"))])
        worker = Worker(app, name="w7", concurrency=1).start()
        try:
            with pytest.raises(Exception, match="time_limit"):
                app.AsyncResult(envelope.id).get(timeout=10)
        finally:
            worker.stop(10)
    finally:
        app.close()


def test_a_result_over_result_max_bytes_fails_its_task_and_the_rest_is_stored() -> None:
    app = YADTQ("big", broker="memory://", backend="memory://", result_max_bytes=1000)
    try:
        @app.task(max_retries=3)
        def blob(n: int) -> bytes:
            return b"x" * n

        worker = Worker(app, name="w8", concurrency=2).start()
        try:
            big, small = blob.delay(5000), blob.delay(10)
            with pytest.raises(Exception, match="result_max_bytes"):
                big.get(timeout=10)
            assert big.state == states.FAILED and big.retries == 0
            assert small.get(timeout=10) == b"x" * 10
        finally:
            worker.stop(10)
    finally:
        app.close()


class _Owning:
    """A consumer stand-in whose deliveries of generation 1 were revoked."""

    def __init__(self) -> None:
        self.done_calls: list[Any] = []

    def owns(self, delivery: Any) -> bool:
        return bool(delivery.token != 1)

    def done(self, deliveries: Any) -> None:
        self.done_calls.append(list(deliveries))


def test_reclaim_keeps_a_delivery_that_arrived_after_its_partition_came_back(app: YADTQ) -> None:
    """A parked attempt whose first delivery was revoked, then delivered again under a new
    assignment, is kept with the new delivery (else that offset would never be done)."""
    from yadtq.transports.base import Delivery
    from yadtq.worker.attempts import Identity, Pending, WorkerStats
    from yadtq.worker.consumer import TaskConsumer

    @app.task
    def job(x: int) -> int:
        return x

    consumer = _Owning()
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


@dataclasses.dataclass
class _PoolRig:
    """A task consumer over a pool (not started), a consumer stand-in, and ``job(x)``,
    whose runs are counted."""

    runs: Runs
    job: Any
    outcomes: list[Any]
    pool: Any
    consumer: _Owning
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
    consumer = _Owning()
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


def test_wrong_arity_is_dead_lettered_with_its_reason_and_never_entered(app: YADTQ) -> None:
    """Arguments that do not fit the task's signature are checked before a claim: the
    message is dead-lettered with the reason (like any unrunnable message), its task is
    recorded failed with TypeError, the function is never entered, the next task runs."""
    runs = Runs()

    @app.task
    def two(x: int, y: int) -> int:
        runs.hit((x, y))
        return x + y

    bad = Envelope(id="arity-4", task=two.name, args=(1, 2, 3, 4))
    kw = Envelope(id="arity-kw", task=two.name, args=(1,), kwargs={"y": 2, "z": 3})
    worker = Worker(app, name="wa", concurrency=2).start()
    try:
        publish(app, bad)
        publish(app, kw)
        assert two.delay(1, 2).get(timeout=10) == 3
        wait_until(lambda: len(app.broker.list_dead_letters()) == 2, 10)
        reasons = {d.reason for d in app.broker.list_dead_letters()}
        assert any("two() too many positional arguments" in r for r in reasons), reasons
        assert any("unexpected keyword argument 'z'" in r for r in reasons), reasons
        for envelope in (bad, kw):
            with pytest.raises(TypeError, match=r"two\(\) "):
                app.AsyncResult(envelope.id).get(timeout=10)
        assert runs.calls == [(1, 2)]
    finally:
        worker.stop(10)


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



class _Revoking(_Owning):
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
