"""The worker's behaviour on memory://, through the public API (and the pytest plugin's fixtures)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from yadtq import YADTQ, NotRegistered, Revoked, SerializationError, TaskError, states
from yadtq.exceptions import TimeLimitExceeded
from yadtq.exceptions import TimeoutError as ResultTimeout
from yadtq.transports.base import Message
from yadtq.worker.main import Worker

from .helpers import wait_until


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def hit(self, key: str) -> int:
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            return self.calls[key]

    def __getitem__(self, key: str) -> int:
        return self.calls.get(key, 0)


@pytest.fixture
def counter() -> Counter:
    return Counter()


def test_delay_runs_on_the_worker_and_local_call_runs_here(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add(2, 3) == 5
    result = add.delay(2, 3)
    assert result.get(timeout=10) == 5
    assert result.successful() and result.ready() and result.state == states.SUCCESS
    assert result.worker == "pytest-worker"
    assert str(result) == result.id


def test_many_tasks_all_complete(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task
    def square(x: int) -> int:
        return x * x

    results = [square.delay(i) for i in range(500)]
    assert [r.get(timeout=20) for r in results] == [i * i for i in range(500)]


def test_retries_then_success(yadtq_app: YADTQ, yadtq_worker: Worker, counter: Counter) -> None:
    @yadtq_app.task(retry_delay=0.01)
    def flaky() -> str:
        if counter.hit("flaky") < 3:
            raise ConnectionError("try again")
        return "ok"

    result = flaky.delay()
    assert result.get(timeout=10) == "ok"
    assert result.retries == 2 and counter["flaky"] == 3
    history = [state for state, _, _ in result.info.history]  # type: ignore[union-attr]
    assert history.count(states.RETRYING) == 2 and history[-1] == states.SUCCESS


def test_retries_exhausted_reraises_builtin_error(yadtq_app: YADTQ, yadtq_worker: Worker,
                                                  counter: Counter) -> None:
    @yadtq_app.task(retry_delay=0.01)
    def always_fails() -> None:
        counter.hit("fail")
        raise KeyError("missing")

    result = always_fails.delay()
    with pytest.raises(KeyError, match="missing"):
        result.get(timeout=10)
    assert counter["fail"] == 4  # first attempt + max_retries (3)
    assert result.failed() and result.retries == 3
    assert "KeyError" in (result.traceback or "")
    assert isinstance(result.result, KeyError)


def test_backoff_delays_grow(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task(retry_backoff=0.05, retry_jitter=False, max_retries=3)
    def failing() -> None:
        raise ValueError("x")

    result = failing.delay()
    with pytest.raises(ValueError):
        result.get(timeout=10)
    starts = [ts for state, ts, _ in result.info.history if state == states.PROCESSING]  # type: ignore[union-attr]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(gaps) == 3
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2


def test_custom_exception_becomes_task_error(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    class PaymentDeclined(Exception):
        pass

    @yadtq_app.task(max_retries=0)
    def pay() -> None:
        raise PaymentDeclined("card expired")

    with pytest.raises(TaskError) as info:
        pay.delay().get(timeout=10)
    assert info.value.type_name.endswith("PaymentDeclined")
    assert info.value.message == "card expired"
    assert "card expired" in (info.value.remote_traceback or "")


def test_autoretry_for_narrows_what_is_retried(yadtq_app: YADTQ, yadtq_worker: Worker,
                                               counter: Counter) -> None:
    @yadtq_app.task(autoretry_for=(ConnectionError,), retry_delay=0.01)
    def strict() -> None:
        counter.hit("strict")
        raise ValueError("not retryable")

    with pytest.raises(ValueError):
        strict.delay().get(timeout=10)
    assert counter["strict"] == 1


def test_bound_task_retries_itself_and_sees_its_request(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    seen: list[Any] = []

    @yadtq_app.task(bind=True)
    def polite(self: Any, x: int) -> int:
        seen.append((self.request.id, self.request.retries))
        if self.request.retries < 2:
            self.retry(countdown=0.01)
        return x

    result = polite.delay(7)
    assert result.get(timeout=10) == 7
    assert seen == [(result.id, 0), (result.id, 1), (result.id, 2)]


def test_a_task_sees_its_whole_request_built_once(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    # Built from the envelope when first asked for (task.LazyRequest): every field, once.
    seen: list[Any] = []

    @yadtq_app.task(bind=True)
    def look(self: Any, x: int, *, y: int) -> None:
        seen.append((self.request, self.request is self.request))

    result = look.apply_async((1,), {"y": 2}, queue=yadtq_app.settings.default_queue,
                              max_retries=5)
    assert result.get(timeout=10) is None
    ((request, same),) = seen
    assert same
    assert (request.id, request.task, request.args, request.kwargs, request.retries,
            request.queue, request.eta, request.parent_id) == (
        result.id, look.name, (1,), {"y": 2}, 0, yadtq_app.settings.default_queue, None, None)
    assert request.worker and request.options == {"max_retries": 5}
    assert look.request.id == "", "outside a running task: an empty request"


def test_unencodable_argument_raises_at_delay(yadtq_app: YADTQ) -> None:
    @yadtq_app.task
    def echo(x: Any) -> Any:
        return x

    with pytest.raises(SerializationError):
        echo.delay(object())
    assert yadtq_app.broker.depth("default") == 0


def test_unencodable_result_fails_the_task(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task(max_retries=0)
    def weird() -> Any:
        return object()

    with pytest.raises(SerializationError):
        weird.delay().get(timeout=10)


def test_countdown_is_respected(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task
    def stamp() -> float:
        return time.time()

    sent = time.time()
    result = stamp.apply_async(countdown=0.5)
    assert result.state == states.SCHEDULED
    ran_at = result.get(timeout=10)
    assert ran_at - sent >= 0.5
    assert ran_at - sent < 3.0


def test_revoke_before_run(yadtq_app: YADTQ, yadtq_worker: Worker, counter: Counter) -> None:
    @yadtq_app.task
    def never() -> None:
        counter.hit("never")

    result = never.apply_async(countdown=0.3)
    result.revoke()
    assert result.state == states.REVOKED
    with pytest.raises(Revoked):
        result.get(timeout=5)
    wait_until(lambda: yadtq_app.backend.next_due() is None, timeout=5)
    # the scheduled message was published and reached the worker, which refused to run it
    wait_until(lambda: yadtq_app.broker.depth("default") == 0, timeout=5)
    yadtq_worker.stop(10)
    assert counter["never"] == 0


def test_expired_task_is_revoked_not_run(yadtq_app: YADTQ, yadtq_worker: Worker, counter: Counter) -> None:
    @yadtq_app.task
    def late() -> None:
        counter.hit("late")

    result = late.apply_async(expires=-1)
    with pytest.raises(Revoked, match="expired"):
        result.get(timeout=5)
    assert counter["late"] == 0


def test_unknown_task_fails_with_not_registered_and_is_dead_lettered(
        yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    result = yadtq_app.send_task("no.such.task", (1,))
    with pytest.raises(NotRegistered):
        result.get(timeout=10)
    wait_until(lambda: yadtq_app.broker.dead_letters())
    assert yadtq_app.broker.dead_letters()[-1].headers["yadtq-id"] == result.id.encode()


def test_garbage_is_dead_lettered_and_consumption_goes_on(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task
    def ping() -> str:
        return "pong"

    yadtq_app.broker.publish([Message("default", b"\xc1 definitely not msgpack")])
    assert ping.delay().get(timeout=10) == "pong"
    wait_until(lambda: any(d.body.startswith(b"\xc1") for d in yadtq_app.broker.dead_letters()))


def test_wrong_arity_fails_without_retries(yadtq_app: YADTQ, yadtq_worker: Worker, counter: Counter) -> None:
    @yadtq_app.task
    def two(x: int, y: int) -> int:
        counter.hit("two")
        return x + y

    result = yadtq_app.send_task(two.name, (1,))
    with pytest.raises(TypeError, match="missing"):
        result.get(timeout=10)
    assert result.retries == 0 and counter["two"] == 0


def test_dedupe_returns_the_earlier_task(yadtq_app: YADTQ, yadtq_worker: Worker, counter: Counter) -> None:
    @yadtq_app.task(dedupe=True)
    def expensive(x: int) -> int:
        counter.hit(f"exp{x}")
        return x * 10

    first, second = expensive.delay(1), expensive.delay(1)
    other = expensive.delay(2)
    assert first.id == second.id != other.id
    assert first.get(timeout=10) == 10 and other.get(timeout=10) == 20
    assert expensive.delay(1).id == first.id  # succeeded within the TTL: cached
    assert counter["exp1"] == 1


def test_get_timeout_raises_yadtq_timeout_error(yadtq_app: YADTQ) -> None:
    @yadtq_app.task
    def nobody_runs_me() -> None: ...

    with pytest.raises(ResultTimeout) as info:
        nobody_runs_me.delay().get(timeout=0.05)
    assert isinstance(info.value, TimeoutError)


def test_forget_deletes_the_result(yadtq_app: YADTQ, yadtq_worker: Worker) -> None:
    @yadtq_app.task
    def one() -> int:
        return 1

    result = one.delay()
    assert result.get(timeout=10) == 1
    result.forget()
    assert yadtq_app.AsyncResult(result.id).state == states.QUEUED


def test_seed_helpers_take_ids_or_results() -> None:
    app = YADTQ("seed", broker="memory://", backend="memory://", heartbeat_interval=0.05)

    @app.task
    def six() -> int:
        return 6

    worker = Worker(app, name="seed-worker").start()
    try:
        result = six.delay()
        result.get(timeout=10)
        assert app.status(result) == app.status(result.id) == states.SUCCESS
        assert app.value(result.id) == 6
        wait_until(lambda: app.get_worker_status()["seed-worker"]["tasks_done"] == 1)
        status = app.get_worker_status()["seed-worker"]
        assert status["status"] == "alive" and status["tasks_failed"] == 0
        assert set(status) >= {"status", "last_heartbeat", "tasks_done", "tasks_failed", "active"}
    finally:
        worker.stop(10)


def test_signed_app_rejects_unsigned_and_forged_messages(counter: Counter) -> None:
    app = YADTQ("signed", broker="memory://", backend="memory://", secret_key="s3cret")

    @app.task
    def guarded() -> str:
        counter.hit("guarded")
        return "ran"

    forger = YADTQ("forger", broker="memory://", backend="memory://", secret_key="wrong")
    forger._broker = app.broker  # same in-process queues
    forger.tasks = app.tasks
    unsigned = YADTQ("plain", broker="memory://", backend="memory://")
    unsigned._broker = app.broker
    worker = Worker(app, name="signed-worker").start()
    try:
        forged = forger.send_task(guarded.name)
        plain = unsigned.send_task(guarded.name)
        assert guarded.delay().get(timeout=10) == "ran"
        wait_until(lambda: len(app.broker.dead_letters()) == 2)
        # Issue 8 case 5: an unverified message never changes the state of the id it names;
        # each rejection is recorded under a dead-letter id of its own.
        for bad in (forged, plain):
            assert app.AsyncResult(bad.id).state != states.FAILED
        wait_until(lambda: len(app.backend.snapshot().recent_failures) == 2)
        failures = app.backend.snapshot().recent_failures
        assert all(f.task_id.startswith("dlq-") for f in failures)
        assert {f.error_message.split(" (claims")[0] for f in failures if f.error_message} == {
            "message signature does not match", "unsigned message rejected (secret_key is set)"}
        assert counter["guarded"] == 1
    finally:
        worker.stop(10)


def test_graceful_stop_finishes_in_flight_tasks(yadtq_app: YADTQ, counter: Counter) -> None:
    @yadtq_app.task
    def slow() -> str:
        counter.hit("started")
        time.sleep(0.5)
        return "finished"

    worker = Worker(yadtq_app, name="stopper").start()
    result = slow.delay()
    wait_until(lambda: counter["started"] == 1)
    worker.stop(timeout=10)
    assert result.state == states.SUCCESS and result.get(timeout=1) == "finished"
    assert yadtq_app.get_worker_status()["stopper"]["status"] == "offline"


def test_time_limit_kills_the_process_pool_child(yadtq_app: YADTQ) -> None:
    @yadtq_app.task(time_limit=0.5, max_retries=0)
    def too_slow() -> None:
        time.sleep(30)

    @yadtq_app.task
    def quick() -> str:
        return "still working"

    worker = Worker(yadtq_app, pool="processes", concurrency=1).start()
    try:
        started = time.monotonic()
        with pytest.raises(TimeLimitExceeded, match="time limit"):
            too_slow.delay().get(timeout=20)
        assert time.monotonic() - started < 10
        assert quick.delay().get(timeout=20) == "still working"
    finally:
        worker.stop(10)


def test_unresponsive_worker_is_noticed(counter: Counter) -> None:
    from yadtq.transports.base import WorkerInfo

    app = YADTQ("hb", broker="memory://", backend="memory://", heartbeat_interval=0.05,
                worker_unresponsive_after=0.2)
    # One heartbeat, then silence: judged on the backend's clock, whatever its own said.
    app.backend.heartbeat(WorkerInfo(worker="ghost", instance="ghost#1", last_heartbeat=time.time() + 60))
    heard = time.time()
    worker = Worker(app, name="watcher").start()
    try:
        wait_until(lambda: app.worker_failures(), timeout=5)
        failure = app.worker_failures()[0]
        assert failure.worker == "ghost" and failure.last_heartbeat == pytest.approx(heard, abs=0.1)
        assert failure.detected - failure.last_heartbeat > 0.2
        status = app.get_worker_status()
        assert status["ghost"]["status"] == "unresponsive" and status["watcher"]["status"] == "alive"
    finally:
        worker.stop(10)


def test_eager_mode_runs_inline() -> None:
    app = YADTQ("eager", eager=True, retry_delay=0.01)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(2, 3).get(timeout=1) == 5


def test_a_task_delivered_twice_runs_once_and_both_deliveries_are_done(
        yadtq_app: YADTQ, counter: Counter) -> None:
    from yadtq.envelope import Envelope, encode

    @yadtq_app.task
    def slow_once() -> str:
        counter.hit("slow_once")
        time.sleep(0.3)
        return "once"

    envelope = Envelope(id="dup-1", task=slow_once.name, created=time.time())
    message = Message("default", encode(envelope), envelope.routing_key(), envelope.headers())
    worker = Worker(yadtq_app, name="dup-worker", concurrency=4).start()
    try:
        yadtq_app.broker.publish([message, message])  # two deliveries in one batch
        assert yadtq_app.AsyncResult("dup-1").get(timeout=10) == "once"
        wait_until(lambda: counter["slow_once"] == 1)
        yadtq_app.broker.publish([message])  # and one after it finished
        wait_until(lambda: yadtq_app.broker.depth("default") == 0)
    finally:
        worker.stop(10)
    assert counter["slow_once"] == 1
    assert worker._consumer is not None and worker._consumer.in_flight() == 0


def test_a_message_the_broker_refuses_fails_its_task(yadtq_app: YADTQ) -> None:
    from yadtq import BrokerUnavailable

    @yadtq_app.task
    def lost() -> None: ...

    result = lost.delay()
    hook = yadtq_app.broker.on_delivery_error
    assert hook is not None
    hook(result.id, "Broker: Message size too large")  # as the Kafka broker reports it
    assert result.state == states.FAILED
    with pytest.raises(BrokerUnavailable, match="too large"):
        result.get(timeout=1)
