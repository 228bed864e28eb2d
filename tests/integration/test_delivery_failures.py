"""Issue 8's delivery-path failure cases against real Kafka and Redis, with real workers."""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from yadtq import states
from yadtq.envelope import Envelope, encode, peek_task_id
from yadtq.exceptions import BrokerUnavailable, SerializationError
from yadtq.transports.base import Message, StateChange
from yadtq.transports.kafka import KafkaBroker
from yadtq.transports.kafka_consumer import KafkaConsumer

from ..worker.delivery.support import bad_messages
from ..worker.helpers import wait_until
from ..worker.procs import WorkerProcess, running_workers, wait_ready
from .conftest import APP, Cluster
from .test_kafka_redis_worker import committed_offsets

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def publish(cluster: Cluster, envelope: Envelope, key: str) -> None:
    cluster.app.broker.publish([Message(cluster.queue, encode(envelope), key.encode(), envelope.headers())])


def test_hostile_messages_are_dead_lettered_and_the_offset_reaches_the_end(
        cluster: Cluster, kafka_bootstrap: str) -> None:
    """Cases 4 and 5: every bad message is dead-lettered with its reason, recorded under a
    dead-letter id of its own, the tasks after it run, and the committed offset moves past all."""
    add = cluster.module.add
    bad = bad_messages(add.name)
    for _, body in bad:
        cluster.app.broker.publish([Message(cluster.queue, body, b"one-partition")])
    after = [add.apply_async((n, 1), key="one-partition") for n in range(5)]
    with running_workers(1, APP, cluster.env, cluster.logdir):
        assert [r.get(timeout=60) for r in after] == [n + 1 for n in range(5)]
        wait_until(lambda: sum(committed_offsets(cluster, kafka_bootstrap).values()) == len(bad) + 5,
                   timeout=30, interval=0.2)
    letters = [d for d in cluster.app.broker.dead_letters(500) if d.queue == cluster.queue]
    assert sorted(d.body for d in letters) == sorted(body for _, body in bad)
    assert cluster.app.AsyncResult("victim").state != states.FAILED
    failures = cluster.app.backend.snapshot().recent_failures
    assert len([f for f in failures if f.task_id.startswith("dlq-")]) == len(bad)


def test_attempt_and_retry_in_one_batch(cluster: Cluster) -> None:
    """Case 2: the old attempt's refused claim does not acknowledge the retry."""
    add = cluster.module.add
    first = Envelope(id=uuid.uuid4().hex, task=add.name, args=(40, 2), queue=cluster.queue)
    cluster.app.backend.record([StateChange(first.id, states.RETRYING, time.time(), retries=1)])
    for envelope in (first, first.next_attempt(eta=0.0), first):
        publish(cluster, envelope, "same")
    cluster.app.flush(10)
    with running_workers(1, APP, cluster.env, cluster.logdir):
        assert cluster.app.AsyncResult(first.id).get(timeout=60) == 42
    assert cluster.counter("add:40:2") == 1


def test_a_result_over_result_max_bytes_fails_without_wedging_the_recorder(cluster: Cluster) -> None:
    """Case 11."""
    env = dict(cluster.env, YADTQ_RESULT_MAX_BYTES="1000")
    sleep_then = cluster.module.sleep_then
    with running_workers(1, APP, env, cluster.logdir):
        big = sleep_then.delay("x" * 3000, 0.0)
        with pytest.raises(SerializationError, match="result_max_bytes"):
            big.get(timeout=60)
        assert big.retries == 0
        assert sleep_then.delay("small", 0.0).get(timeout=60) == "small"


def test_static_membership_takes_the_worker_name(cluster: Cluster) -> None:
    settings = cluster.app.settings.replace(broker_options={"kafka_static_membership": True})
    broker = KafkaBroker(settings.broker_url, settings)
    consumer = broker.consumer([cluster.queue], worker="w-1")
    try:
        assert isinstance(consumer, KafkaConsumer) and consumer._member_name == "yadtq-w-1"
    finally:
        consumer.close()
        broker.close()
    plain = cluster.app.broker.consumer([cluster.queue], worker="w-1")
    try:
        assert isinstance(plain, KafkaConsumer) and plain._member_name is None  # off by default
    finally:
        plain.close()


def test_a_fenced_consumer_is_rebuilt(cluster: Cluster, kafka_bootstrap: str) -> None:
    """Case 13: a fatal librdkafka error (here: another member took our group.instance.id)
    rebuilds the member instead of looping on a dead consumer."""
    from confluent_kafka import Consumer as RdConsumer

    broker = cluster.app.broker
    assert isinstance(broker, KafkaBroker)
    broker.ensure_topic(f"yadtq.{cluster.queue}")
    member = f"yadtq-fenced-{cluster.queue}"
    consumer = KafkaConsumer(broker, [cluster.queue], None, 100, 5.0, member_name=member)
    intruder = None
    try:
        wait_until(lambda: consumer.fetch(0, 0.2) == [] and bool(consumer.assignment()), timeout=60)
        intruder = RdConsumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"yadtq.{cluster.queue}",
                               "group.instance.id": member, "session.timeout.ms": 6000,
                               "partition.assignment.strategy": "cooperative-sticky"})
        intruder.subscribe([f"yadtq.{cluster.queue}"])
        deadline = time.monotonic() + 60
        while consumer.rebuilds == 0:
            assert time.monotonic() < deadline, "the fenced consumer was never rebuilt"
            intruder.poll(0.1)
            consumer.fetch(10, 0.1)
        intruder.close()  # a static member leaves by session timeout (6 s)
        intruder = None
        cluster.module.add.delay(1, 2)
        cluster.app.flush(10)
        got = []
        deadline = time.monotonic() + 60
        while not got:
            assert time.monotonic() < deadline, "the rebuilt consumer received nothing"
            got = consumer.fetch(10, 0.2)
        consumer.done(got)
    finally:
        if intruder is not None:
            intruder.close()
        consumer.close()


class _DropsOneBatch:
    """A librdkafka consumer whose first ``consume`` that takes messages raises instead of
    returning them: what confluent-kafka does when a callback served inside the call
    raised (it destroys the messages taken, and librdkafka's position is past them)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.dropped = 0

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        messages: list[Any] = self._real.consume(num_messages, timeout)
        if messages and not self.dropped:
            self.dropped = len(messages)
            raise KafkaException(KafkaError(KafkaError._FAIL, "a callback raised"))
        return messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_messages_a_failed_fetch_took_are_handed_out_after_all(cluster: Cluster, static: bool) -> None:
    """A fetch that raised after librdkafka gave it messages skips none of them: the member
    rejoins from the committed offsets instead of handing out what follows (whose commit
    would pass the lost ones), and every message is handed out. A static member (which
    never leaves its group) as well."""
    broker = cluster.app.broker
    assert isinstance(broker, KafkaBroker)
    sent = {cluster.module.add.delay(i, i).id for i in range(60)}
    assert cluster.app.flush(10) == 0
    consumer = KafkaConsumer(broker, [cluster.queue], None, 1000, 5.0,
                             member_name=f"yadtq-failed-fetch-{cluster.queue}" if static else None)
    seen: set[str] = set()

    def take(count: int) -> int:
        try:
            got = consumer.fetch(count, 0.2)
        except BrokerUnavailable:
            return 0
        seen.update(filter(None, (peek_task_id(d.body) for d in got)))
        consumer.done(got)
        return len(got)

    try:
        wait_until(lambda: take(5) > 0, timeout=60)
        crashing = consumer._members[0].client = _DropsOneBatch(consumer._members[0].client)
        deadline = time.monotonic() + 90
        while not sent <= seen and time.monotonic() < deadline:
            take(10)
        assert crashing.dropped, "no fetch took messages through the failing consumer"
        assert sent <= seen, f"{len(sent - seen)} of {len(sent)} messages never handed out"
        assert consumer.rebuilds == 1
    finally:
        consumer.close()


@pytest.mark.timeout(240)
def test_rolling_deploy_then_sigkill_loses_no_task(cluster: Cluster) -> None:
    """Case 1: tasks longer than the revocation drain run on A; B joins (the partitions move
    while A still runs them, so B's claims are BUSY); A is SIGKILLed. Every task completes."""
    env = dict(cluster.env, YADTQ_WORKER_UNRESPONSIVE_AFTER="5")
    sleep_then = cluster.module.sleep_then
    a = WorkerProcess(APP, env, "old", cluster.logdir / "old.log", ["-c", "8"])
    b = None
    try:
        wait_ready([a], cluster.app.get_worker_status, timeout=60)
        tasks = [sleep_then.apply_async((f"long{n}", 20.0), key=f"k{n}") for n in range(8)]
        wait_until(lambda: all(cluster.counter(f"long{n}:started") == 1 for n in range(8)), timeout=60)
        b = WorkerProcess(APP, env, "new", cluster.logdir / "new.log", ["-c", "8"])
        wait_until(lambda: "runs on another live worker" in b.log(), timeout=90, interval=0.2)  # type: ignore[union-attr]
        a.signal(signal.SIGKILL)
        a.wait(10)
        assert [t.get(timeout=120) for t in tasks] == [f"long{n}" for n in range(8)]
        assert all(r.worker in ("old", "new") for r in tasks)
    finally:
        for w in (a, b):
            if w is not None:
                w.stop()
