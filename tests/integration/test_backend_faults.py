"""Issue 8's backend-side faults on real servers: worker clocks 30 s off (case 14), a Redis
restart (case 15, on a Redis of the test's own with AOF), one poison schedule entry on
Kafka (case 6), and a scheduled task's copy refused by Kafka (case 8)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from yadtq import YADTQ, states
from yadtq.envelope import HEADER_ID
from yadtq.exceptions import BackendUnavailable, BrokerUnavailable
from yadtq.transports.base import BUSY, RUN, Claim, StateChange, WorkerInfo
from yadtq.worker.heartbeat import Heartbeat
from yadtq.worker.scheduler import Scheduler

from ..worker.procs import WorkerProcess, wait_ready
from .conftest import APP, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DEADLINE = 60.0


def wait_for(condition: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < end, f"{what} not met within {timeout} s"
        time.sleep(0.05)


# --------------------------------------------------------------------------- case 14


#: Runs ``yadtq`` with this process's ``time.time`` moved by ``argv[1]`` seconds: every
#: clock reading yadtq's Python code takes is off, as on a host whose clock is off.
SKEWED = """
import sys, time
_real = time.time
_skew = float(sys.argv[1])
time.time = lambda: _real() + _skew
sys.argv = ["yadtq", *sys.argv[2:]]
from yadtq.cli import main
main(prog_name="yadtq")
"""


def skewed_worker(env: dict[str, str], name: str, skew: float, logdir: Path) -> WorkerProcess:
    """A ``yadtq worker -c 4`` whose clock runs ``skew`` seconds off."""
    return WorkerProcess(APP, env, name, logdir / f"{name}.log", ["-c", "4"],
                         launcher=(sys.executable, "-c", SKEWED, str(skew)))


@pytest.mark.kafka
@pytest.mark.redis
def test_workers_with_clocks_30_s_apart_run_everything_once_and_on_time(cluster: Cluster) -> None:
    app, tasks = cluster.app, cluster.module
    env = dict(cluster.env, YADTQ_WORKER_UNRESPONSIVE_AFTER="10")
    workers = [skewed_worker(env, name, skew, cluster.logdir)
               for name, skew in (("ahead", 30.0), ("behind", -30.0), ("exact", 0.0))]
    try:
        # Judged on the backend's clock, every one of them is alive.
        wait_ready(workers, app.get_worker_status)
        sent = time.time()
        later = [tasks.stamp.apply_async((f"later-{n}",), countdown=3) for n in range(4)]
        adds = [tasks.add.delay(n, 1000) for n in range(200)]
        flaky = [tasks.flaky.delay(f"flaky-{n}", 1) for n in range(6)]
        assert [r.get(timeout=DEADLINE) for r in adds] == [n + 1000 for n in range(200)]
        assert [r.get(timeout=DEADLINE) for r in flaky] == ["recovered"] * 6
        for result in later:
            result.get(timeout=DEADLINE)
        ready = time.time()
        # Not early (the "ahead" worker's clock must not make them due), not 30 s late.
        assert all(result.state == states.SUCCESS for result in later)
        assert ready - sent >= 2.5, "a countdown task ran before it was due"
        assert ready - sent < 3 + 20, "a countdown task ran far too late"
        # Nothing ran twice, nothing was lost.
        assert [cluster.counter(f"add:{n}:1000") for n in range(200)] == [1] * 200
        assert [cluster.counter(f"flaky-{n}") for n in range(6)] == [2] * 6
        assert [cluster.counter(f"later-{n}") for n in range(4)] == [1] * 4
        # No worker was ever judged dead.
        assert app.worker_failures() == []
        assert {s["status"] for s in app.get_worker_status().values()} == {"alive"}
    finally:
        for worker in workers:
            worker.stop()


# --------------------------------------------------------------------------- case 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test only, with AOF (fsync always), restartable in place."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 30, "redis-server up")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # AOF with fsync always: nothing acknowledged is lost
            self.proc.wait(30)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not _which("redis-server"):
        pytest.skip("redis-server not installed")
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _which(name: str) -> bool:
    return any(os.access(os.path.join(d, name), os.X_OK) for d in os.environ.get("PATH", "").split(":"))


@pytest.mark.redis
def test_a_redis_restart_does_not_make_live_workers_look_dead(own_redis: OwnRedis) -> None:
    settings = {"heartbeat_interval": 0.3, "worker_unresponsive_after": 1.5}
    apps = [YADTQ(f"restart{n}", broker="memory://", backend=own_redis.url, **settings)  # type: ignore[arg-type]
            for n in range(2)]
    beats = [Heartbeat(app, lambda n=n: WorkerInfo(f"w{n}", f"i{n}", last_heartbeat=time.time()))
             for n, app in enumerate(apps)]
    holder, other = apps

    def claim(app: YADTQ, n: int) -> str:
        return app.backend.claim([Claim("task", "add", "q", 0, f"i{n}", f"w{n}", time.time())])[0]

    try:
        for beat in beats:
            beat.start()
        assert claim(holder, 0) == RUN
        assert claim(other, 1) == BUSY
        own_redis.stop()
        time.sleep(4 * settings["worker_unresponsive_after"])  # every heartbeat is now stale
        own_redis.start()

        def first_claim() -> str:
            try:
                return claim(other, 1)
            except BackendUnavailable:
                return ""

        # Right after the restart, and for longer than the window: the holder is alive.
        assert wait_for(first_claim, 30, "a claim after the restart") == BUSY
        end = time.monotonic() + 3 * settings["worker_unresponsive_after"]
        while time.monotonic() < end:
            assert claim(other, 1) == BUSY
            time.sleep(0.1)
        status = other.get_worker_status()
        assert {status["w0"]["status"], status["w1"]["status"]} == {"alive"}
        assert other.worker_failures() == []
        # The holder really dies: after the window its task runs elsewhere, as before.
        beats[0].stop()
        died = time.monotonic()
        assert wait_for(lambda: claim(other, 1) == RUN, 30, "the takeover")
        assert time.monotonic() - died >= settings["worker_unresponsive_after"] - 0.5
        wait_for(other.worker_failures, 10, "the failure in the history")
        assert [f.worker for f in other.worker_failures()] == ["w0"]
    finally:
        for beat in beats:
            beat.stop()
        for app in apps:
            app.close()


# --------------------------------------------------------------------------- cases 6 and 8


@pytest.fixture
def kafka_app(kafka_bootstrap: str, redis_url: str, unique: str) -> Iterator[YADTQ]:
    app = YADTQ("faults", broker=f"kafka://{kafka_bootstrap}", backend=redis_url,
                default_queue=f"faults-{unique}", backend_options={"prefix": f"faults-{unique}"})
    try:
        yield app
    finally:
        app.close()


@pytest.mark.kafka
@pytest.mark.redis
def test_an_entry_over_the_topics_message_max_bytes_does_not_block_the_others(
        kafka_app: YADTQ, kafka_bootstrap: str) -> None:
    app = kafka_app
    queue = app.settings.default_queue
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = f"yadtq.{queue}"
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "4096"})])[topic].result(30)

    @app.task
    def echo(text: str) -> str:
        return text

    small = [echo.apply_async((f"small-{n}",), countdown=0.3) for n in range(3)]
    big = echo.apply_async(("x" * 20_000,), countdown=0.3)
    time.sleep(0.5)
    scheduler = Scheduler(app)
    moved = 0
    end = time.monotonic() + DEADLINE
    while moved < 3:
        assert time.monotonic() < end, f"only {moved} published"
        moved += scheduler.publish_due()
    assert app.backend.next_due() is None
    record = app.backend.get([big.id])[0]
    assert record is not None and record.state == states.FAILED
    assert record.error is not None and "MSG_SIZE_TOO_LARGE" in record.error.message
    assert [r.state for r in small] == [states.SCHEDULED] * 3  # published, waiting for a worker
    consumer = app.broker.consumer([queue])
    got: list[bytes] = []
    try:
        while len(got) < 3:
            assert time.monotonic() < end
            deliveries = consumer.fetch(10, 1.0)
            got += [d.headers[HEADER_ID] for d in deliveries]
            consumer.done(deliveries)
    finally:
        consumer.close()
    assert sorted(got) == sorted(r.id.encode() for r in small)
    dead = [d for d in app.broker.dead_letters(50) if d.headers.get(HEADER_ID) == big.id.encode()]
    assert len(dead) == 1


@pytest.mark.kafka
@pytest.mark.redis
def test_a_copy_refused_past_message_timeout_does_not_fail_a_scheduled_task(
        kafka_app: YADTQ, redis_url: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("yadtq.worker.scheduler.LEASE", 4.0)
    # A producer whose broker never answers: every copy times out (message.timeout.ms).
    dead = YADTQ("faults", broker=f"kafka://127.0.0.1:{_free_port()}", backend=redis_url,
                 default_queue=kafka_app.settings.default_queue,
                 backend_options={"prefix": f"faults-{unique}"},
                 broker_options={"message.timeout.ms": 1000})
    dead.broker._topics.add(f"yadtq.{dead.settings.default_queue}")  # type: ignore[attr-defined]
    try:
        @dead.task
        def echo(text: str) -> str:
            return text

        waiting = echo.apply_async(("waiting",), countdown=0.3)
        retrying = uuid.uuid4().hex
        dead.backend.record([StateChange(retrying, states.RETRYING, time.time(), retries=1,
                                         eta=time.time() + 3600)])
        direct = echo.delay("direct")  # a copy with nothing else to run it: this one fails
        echo.apply_async(("stale",), task_id=retrying)  # a stale copy of a retrying task
        with pytest.raises(BrokerUnavailable):
            direct.get(timeout=30)
        wait_for(lambda: dead.broker.delivery_errors >= 2, 30,  # type: ignore[attr-defined]
                 what="both copies refused")
        time.sleep(0.3)
        # The scheduler's own copy times out as well: the entry stays scheduled.
        assert Scheduler(dead).publish_due() == 0
        assert waiting.state == states.SCHEDULED
        record = dead.backend.get([retrying])[0]
        assert record is not None and record.state == states.RETRYING
        assert direct.state == states.FAILED
        # With the broker back, the scheduled task goes out once its lease ends.
        moved = 0
        end = time.monotonic() + 45
        scheduler = Scheduler(kafka_app)
        while not moved:
            assert time.monotonic() < end
            moved = scheduler.publish_due()
            time.sleep(0.2)
        assert moved == 1 and waiting.state == states.SCHEDULED
    finally:
        dead.close()


# --------------------------------------------------------------------------- case 17


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("yadtq")]


@pytest.mark.redis
def test_a_redis_outage_is_logged_once_lost_and_once_back(
        own_redis: OwnRedis, caplog: pytest.LogCaptureFixture) -> None:
    """In a client waiting on a result and in a worker alike: no warning per retry."""
    from yadtq.worker.main import Worker

    caplog.set_level(logging.INFO, logger="yadtq")
    app = YADTQ("quiet", broker="memory://", backend=own_redis.url, heartbeat_interval=0.2,
                worker_unresponsive_after=1.0)
    # The client shares the worker's in-process broker; its backend is its own connection.
    client = YADTQ("quiet", broker="memory://", backend=own_redis.url)
    client._broker = app.broker

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    worker = Worker(app, name="quiet-worker", concurrency=1).start()
    waiting = client.AsyncResult("not-yet")
    woken: list[Any] = []
    waiter = threading.Thread(target=lambda: woken.append(waiting.get(timeout=60)), daemon=True)
    try:
        assert client.send_task(add.name, (1, 2)).get(timeout=30) == 3
        waiter.start()
        probe = redis.Redis.from_url(own_redis.url)
        wait_for(lambda: probe.exists(f"yadtq:waiters:{waiting.id}"), 10, "the client waiting")
        probe.close()
        caplog.clear()
        own_redis.stop()
        time.sleep(6)
        own_redis.start()
        assert client.send_task(add.name, (2, 3)).get(timeout=30) == 5
        client.backend.record([StateChange(waiting.id, states.SUCCESS, time.time(), result=b"\x01")])
        waiter.join(30)
        assert woken == [1]  # the client rode out the outage
        time.sleep(1)  # the last restored lines
        lines = _outage_lines(caplog)
        inbox = [line for line in lines if line.startswith("yadtq.transports.redis.inbox")]
        assert len(inbox) == 2, inbox  # lost, restored
        worker_lines = [line for line in lines if line not in inbox]
        lost = [line for line in worker_lines if "lost" in line]
        assert len(lost) == 1 and len(worker_lines) <= 3, worker_lines  # lost, restored (+1 spare)
    finally:
        worker.stop(20)
        client._broker = None
        client.close()
        app.close()
