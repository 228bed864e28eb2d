"""KafkaBroker against a real Kafka: acks-late commits, no head-of-line blocking, rebalancing.

Needs ``YADTQ_TEST_KAFKA`` (host:port); every test uses its own queue names.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from yadtq.envelope import Envelope, encode
from yadtq.namespace import Naming
from yadtq.settings import Settings
from yadtq.transports import kafka as kafka_module
from yadtq.transports.base import Delivery, Message
from yadtq.transports.kafka import KafkaBroker
from yadtq.transports.kafka_consumer import KafkaConsumer
from yadtq.transports.kafka_naming import (
    HEADER_DLQ_REASON,
    HEADER_DLQ_SOURCE,
    HEADER_DLQ_TRUNCATED,
    KafkaToken,
    group_for,
    topic_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

#: The default namespace's names (every broker here uses it).
NAMING = Naming()
DLQ_TOPIC = NAMING.dlq_topic

#: Deadline for anything that involves a group join or a rebalance.
JOIN_TIMEOUT = 30.0


class Harness:
    """Builds brokers and consumers for one test and closes them all afterwards."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.brokers: list[KafkaBroker] = []
        self.consumers: list[KafkaConsumer] = []

    def broker(self, partitions: int = 4, **options: Any) -> KafkaBroker:
        settings = Settings(broker_url=f"kafka://{self.bootstrap}", partitions=partitions,
                            broker_options=dict(options), shutdown_timeout=5.0)
        broker = KafkaBroker(settings.broker_url, settings)
        self.brokers.append(broker)
        return broker

    def consumer(self, broker: KafkaBroker, queues: list[str], **kwargs: Any) -> KafkaConsumer:
        consumer = broker.consumer(queues, **kwargs)
        assert isinstance(consumer, KafkaConsumer)
        self.consumers.append(consumer)
        return consumer

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.close()
        for broker in self.brokers:
            broker.close()

    # -- cluster views, straight from the admin API
    def committed(self, queue: str, partitions: int) -> dict[int, int]:
        tps = [TopicPartition(topic_for(NAMING, queue), p) for p in range(partitions)]
        # a consumer that does not join the group (AdminClient.list_consumer_group_offsets
        # crashes librdkafka 2.16 on NOT_COORDINATOR)
        reader = RdConsumer({"bootstrap.servers": self.bootstrap, "group.id": group_for(NAMING, queue),
                             "enable.auto.commit": False})
        try:
            return {tp.partition: tp.offset for tp in reader.committed(tps, timeout=10)}
        finally:
            reader.close()

    def high_watermarks(self, queue: str, partitions: int) -> dict[int, int]:
        reader = RdConsumer({"bootstrap.servers": self.bootstrap, "group.id": "watermarks"})
        try:
            return {p: reader.get_watermark_offsets(TopicPartition(topic_for(NAMING, queue), p), 10)[1]
                    for p in range(partitions)}
        finally:
            reader.close()


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[Harness]:
    harness = Harness(kafka_bootstrap)
    yield harness
    harness.close()


def new_queue() -> str:
    return "t" + uuid.uuid4().hex[:10]


def messages(queue: str, count: int, prefix: str = "m") -> list[Message]:
    return [Message(queue, f"{prefix}{i}".encode(), f"k{i}".encode(), {"yadtq-id": f"{prefix}{i}".encode()})
            for i in range(count)]


def fetch_all(consumer: KafkaConsumer, count: int, timeout: float = JOIN_TIMEOUT,
              batch: int = 256, done: bool = False) -> list[Delivery]:
    """Fetch until ``count`` deliveries arrived (within the deadline), marking them done if asked."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        batch_got = consumer.fetch(min(batch, count - len(got)), 0.2)
        if done:
            consumer.done(batch_got)
        got += batch_got
    assert len(got) == count, f"got {len(got)} of {count} deliveries"
    return got


def pump(consumer: KafkaConsumer, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Service the consumer (as a worker with a full pool does) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        consumer.fetch(0, 0.05)


def wait_assigned(consumer: KafkaConsumer, timeout: float = JOIN_TIMEOUT) -> None:
    pump(consumer, lambda: bool(consumer.assignment()), timeout, "a partition assignment")


def test_round_trip_keeps_body_key_and_headers(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2)
    queue = new_queue()
    sent = messages(queue, 5)
    broker.publish(sent)
    assert broker.flush(10) == 0
    consumer = kafka.consumer(broker, [queue])
    got = fetch_all(consumer, 5)
    assert sorted(d.body for d in got) == sorted(m.body for m in sent)
    by_body = {m.body: m for m in sent}
    for d in got:
        assert d.queue == queue
        assert d.key == by_body[d.body].key
        assert d.headers == by_body[d.body].headers
    assert consumer.in_flight() == 5
    consumer.done(got)
    assert consumer.in_flight() == 0
    consumer.close()
    assert kafka.committed(queue, 2) == kafka.high_watermarks(queue, 2)
    consumer.done(got)  # late reports after close are harmless


def test_out_of_order_done_from_threads_commits_everything(kafka: Harness) -> None:
    broker = kafka.broker(partitions=4)
    queue = new_queue()
    count = 1000
    for batch in range(0, count, 100):
        broker.publish(messages(queue, 100, prefix=f"b{batch}-"))
    consumer = kafka.consumer(broker, [queue])
    got = fetch_all(consumer, count)
    assert len({d.body for d in got}) == count
    random.Random(3).shuffle(got)
    threads = [threading.Thread(target=lambda part=got[i::8]: [consumer.done([d]) for d in part])
               for i in range(8)]
    for t in threads:
        t.start()
    pump(consumer, lambda: consumer.in_flight() == 0, 30, "all deliveries done")
    for t in threads:
        t.join(10)
    consumer.close()
    assert kafka.committed(queue, 4) == kafka.high_watermarks(queue, 4)

    again = kafka.consumer(broker, [queue])
    wait_assigned(again)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert again.fetch(100, 0.1) == []


def test_unfinished_deliveries_are_redelivered_after_close(kafka: Harness) -> None:
    broker = kafka.broker(partitions=1)
    queue = new_queue()
    broker.publish(messages(queue, 20))
    consumer = kafka.consumer(broker, [queue])
    got = sorted(fetch_all(consumer, 20), key=lambda d: d.token.offset)
    finished = [*got[:5], got[7], got[12]]
    consumer.done(finished)
    consumer.close()
    assert kafka.committed(queue, 1) == {0: 5}  # the lowest unfinished offset

    again = kafka.consumer(broker, [queue])
    redelivered = fetch_all(again, 15)
    assert [d.body for d in redelivered] == [d.body for d in got[5:]]
    unfinished = {d.body for d in got} - {d.body for d in finished}
    assert unfinished <= {d.body for d in redelivered}


def test_no_head_of_line_blocking(kafka: Harness) -> None:
    broker = kafka.broker(partitions=1)
    queue = new_queue()
    broker.publish(messages(queue, 201))
    consumer = kafka.consumer(broker, [queue])
    (slow,) = fetch_all(consumer, 1, batch=1)
    rest = fetch_all(consumer, 200)  # handed out while the first is still running
    assert slow.token.offset not in {d.token.offset for d in rest}
    consumer.done(rest)
    assert consumer.in_flight() == 1

    # Give the owner thread time to commit: the position must stay at the slow one.
    settle = time.monotonic() + 1.0
    pump(consumer, lambda: time.monotonic() > settle and kafka.committed(queue, 1)[0] == slow.token.offset,
         10, "the commit of the slow message's offset")
    assert kafka.committed(queue, 1) == {0: slow.token.offset}

    consumer.done([slow])
    started = time.monotonic()
    pump(consumer, lambda: kafka.committed(queue, 1) == {0: 201}, 10, "the commit past all 201")
    assert time.monotonic() - started < 1.5


def test_dead_letter_reaches_the_dlq_with_reason(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2)
    queue = new_queue()
    marker = uuid.uuid4().hex.encode()
    broker.publish([Message(queue, marker, b"key-1", {"yadtq-id": b"task-1", "yadtq-task": b"bad.task"})])
    consumer = kafka.consumer(broker, [queue])
    (delivery,) = fetch_all(consumer, 1)
    consumer.dead_letter(delivery, "task 'bad.task' is not registered")
    assert consumer.in_flight() == 0
    consumer.close()
    token = delivery.token
    assert kafka.committed(queue, 2)[token.partition] == token.offset + 1  # the source message is done

    reader = RdConsumer({"bootstrap.servers": kafka.bootstrap, "group.id": "dlq-test-" + uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        reader.subscribe([DLQ_TOPIC])
        found: Optional[Any] = None
        deadline = time.monotonic() + JOIN_TIMEOUT
        while found is None and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.2):
                if msg.error() is None and msg.value() == marker:
                    found = msg
        assert found is not None, "dead letter not found on yadtq.dlq"
        headers = dict(found.headers())
        assert headers[HEADER_DLQ_REASON] == b"task 'bad.task' is not registered"
        assert headers[HEADER_DLQ_SOURCE] == f"{token.topic}:{token.partition}:{token.offset}".encode()
        assert headers["yadtq-id"] == b"task-1"
        assert found.key() == b"key-1"
    finally:
        reader.close()
    assert any(d.body == marker and d.queue == queue for d in broker.dead_letters(1000))


def test_dead_letter_refused_for_its_size_goes_truncated(kafka: Harness,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A dead-letter topic that takes less than the task topic did (here: the dead-letter
    # producer's own limit, lowered) must not wedge the worker on a retried refusal.
    monkeypatch.setattr(kafka_module, "DLQ_MAX_MESSAGE_BYTES", 1_000_000)
    broker = kafka.broker(partitions=1)
    queue = new_queue()
    body = b"\xc1" + uuid.uuid4().hex.encode() + b"\x00" * 1_500_000
    token = KafkaToken(topic_for(NAMING, queue), 0, 7, 0)
    broker.send_dead_letter(Delivery(body=body, queue=queue, headers={"yadtq-id": b"big"}, key=b"k",
                                     token=token), "not msgpack")
    source = f"{token.topic}:0:7".encode()
    reader = RdConsumer({"bootstrap.servers": kafka.bootstrap, "group.id": "dlq-test-" + uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        reader.subscribe([DLQ_TOPIC])
        found: Optional[Any] = None
        deadline = time.monotonic() + JOIN_TIMEOUT
        while found is None and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.2):
                if msg.error() is None and dict(msg.headers() or ()).get(HEADER_DLQ_SOURCE) == source:
                    found = msg
        assert found is not None, "truncated dead letter not found on yadtq.dlq"
        headers = dict(found.headers())
        assert headers[HEADER_DLQ_TRUNCATED] == str(len(body)).encode()
        reason = headers[HEADER_DLQ_REASON].decode()
        assert reason.startswith("not msgpack") and "truncated" in reason and str(len(body)) in reason
        assert found.value() == body[:len(found.value())] and 0 < len(found.value()) < 1_000_000
        assert headers["yadtq-id"] == b"big" and found.key() == b"k"
    finally:
        reader.close()


@pytest.mark.slow
def test_two_consumers_split_partitions_exactly_once(kafka: Harness) -> None:
    broker = kafka.broker(partitions=4)
    queue = new_queue()
    first = kafka.consumer(broker, [queue])
    broker.publish(messages(queue, 200, prefix="a"))
    seen: dict[bytes, str] = {}
    duplicates: list[bytes] = []

    def take(consumer: KafkaConsumer, name: str, max_items: int) -> int:
        got = consumer.fetch(max_items, 0.05)
        for d in got:
            if d.body in seen:
                duplicates.append(d.body)
            seen[d.body] = name
        consumer.done(got)  # outcome "stored" at once: nothing in flight at a rebalance
        return len(got)

    deadline = time.monotonic() + JOIN_TIMEOUT
    while len(seen) < 50 and time.monotonic() < deadline:
        take(first, "first", 10)
    second = kafka.consumer(broker, [queue])  # joins mid-stream: first must give partitions up
    broker.publish(messages(queue, 200, prefix="b"))
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline and (
            len(seen) < 400 or not first.assignment() or not second.assignment()):
        take(first, "first", 10)
        take(second, "second", 10)
    assert duplicates == []
    assert len(seen) == 400
    assert first.assignment().isdisjoint(second.assignment())
    assert len(first.assignment() | second.assignment()) == 4
    assert first.revocations > 0
    # After the split, new messages go to both members.
    broker.publish(messages(queue, 100, prefix="c"))
    deadline = time.monotonic() + JOIN_TIMEOUT
    while len(seen) < 500 and time.monotonic() < deadline:
        take(first, "first", 10)
        take(second, "second", 10)
    assert duplicates == []
    assert {seen[f"c{i}".encode()] for i in range(100)} == {"first", "second"}


@pytest.mark.slow
@pytest.mark.parametrize("finish_in_drain", [True, False])
def test_revocation_drains_commits_and_ignores_late_done(kafka: Harness, finish_in_drain: bool) -> None:
    broker = kafka.broker(partitions=2)
    queue = new_queue()
    broker.publish(messages(queue, 40))
    drains: list[float] = []
    held: list[Delivery] = []

    def on_drain(timeout: float) -> None:  # the worker finishing its in-flight tasks
        drains.append(timeout)
        if finish_in_drain:
            first.done(held)

    first = kafka.consumer(broker, [queue], on_drain=on_drain)
    held += fetch_all(first, 40)
    second = kafka.consumer(broker, [queue])
    pump(first, lambda: first.revocations > 0 and second.fetch(0, 0.05) == [] and bool(second.assignment()),
         JOIN_TIMEOUT, "the second member to take a partition")
    assert drains == [5.0]  # min(shutdown_timeout, 10)
    (moved,) = {p for _, p in second.assignment()}
    moved_bodies = {d.body for d in held if d.token.partition == moved}
    if finish_in_drain:
        # Finished during the drain and committed at revocation: not delivered again.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert second.fetch(100, 0.1) == []
    else:
        # Unfinished at revocation: redelivered to the new owner; the old owner's
        # late reports are ignored (its partition moved on).
        redelivered = fetch_all(second, len(moved_bodies), done=True)
        assert {d.body for d in redelivered} == moved_bodies
        first.done(held)
        assert first.in_flight() == 0
        pump(second, lambda: kafka.committed(queue, 2)[moved] == kafka.high_watermarks(queue, 2)[moved],
             10, "the new owner's commit")


@pytest.mark.slow
@pytest.mark.parametrize("static", [True, False])
def test_a_stopping_member_leaves_its_group_unless_static(kafka: Harness, static: bool) -> None:
    """A dynamic member that stops leaves its group at once: its partitions move. A static
    one (KIP-345) does not: the others keep their assignment, and a restart under the
    same name gets its partitions back without rebalancing them."""
    broker = kafka.broker(partitions=2, kafka_static_membership=static)
    queue = new_queue()
    first = kafka.consumer(broker, [queue], worker="a")
    second = kafka.consumer(broker, [queue], worker="b")

    def both() -> bool:
        second.fetch(0, 0.05)
        return len(first.assignment()) == 1 and len(second.assignment()) == 1

    pump(first, both, JOIN_TIMEOUT, "one partition each")
    # The joins may still be settling (a cooperative rebalance takes rounds): take the
    # snapshot only once both assignments held for a second.
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        snapshot = (second.revocations, second.assignment(), first.assignment())
        settled = time.monotonic() + 1.0
        while time.monotonic() < settled and (second.revocations, second.assignment(),
                                              first.assignment()) == snapshot:
            first.fetch(0, 0.05)
            second.fetch(0, 0.05)
        if (second.revocations, second.assignment(), first.assignment()) == snapshot and both():
            break
        assert time.monotonic() < deadline, "the assignment never settled"
    revoked, kept, left = snapshot
    first.close()
    if not static:
        pump(second, lambda: second.assignment() == kept | left, JOIN_TIMEOUT, "the left partition")
        return
    end = time.monotonic() + 3.0  # within the 6 s session timeout
    while time.monotonic() < end:
        second.fetch(0, 0.1)
        assert second.revocations == revoked and second.assignment() == kept, "the group rebalanced"
    again = kafka.consumer(broker, [queue], worker="a")

    def restarted() -> bool:
        second.fetch(0, 0.05)
        return again.assignment() == left

    pump(again, restarted, JOIN_TIMEOUT, "the restarted member's partition")
    assert second.revocations == revoked and second.assignment() == kept


@pytest.mark.slow
def test_fetch_zero_keeps_the_member_alive_past_max_poll_interval(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2, **{"max.poll.interval.ms": 6000, "session.timeout.ms": 6000,
                                           "kafka_max_in_flight": 2})
    queue = new_queue()
    broker.publish(messages(queue, 20))
    consumer = kafka.consumer(broker, [queue])
    running = fetch_all(consumer, 2, batch=2)  # a "long task" holds these
    owned = consumer.assignment()
    # The worker's pool is full: it only calls fetch(0, ...) for 8 s (> max.poll.interval.ms).
    end = time.monotonic() + 8.0
    while time.monotonic() < end:
        assert consumer.fetch(0, 0.1) == []
    assert consumer.revocations == 0
    assert consumer.assignment() == owned
    consumer.done(running)
    rest = fetch_all(consumer, 18, done=True)
    assert len({d.body for d in running + rest}) == 20


def test_in_flight_bound_pauses_and_resumes(kafka: Harness) -> None:
    broker = kafka.broker(partitions=1, kafka_max_in_flight=10)
    queue = new_queue()
    broker.publish(messages(queue, 50))
    consumer = kafka.consumer(broker, [queue])
    held = fetch_all(consumer, 10)
    pump(consumer, lambda: bool(consumer._members[0].paused), 10, "the partition to pause")
    assert consumer.fetch(10, 0.3) == []  # at the bound: nothing more is handed out
    consumer.done(held)
    rest = fetch_all(consumer, 40, batch=5, done=True)
    assert len({d.body for d in held + rest}) == 50


def test_one_consumer_serves_several_queues(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2)
    queues = [new_queue(), new_queue()]
    for queue in queues:
        broker.publish(messages(queue, 10, prefix=queue))
    consumer = kafka.consumer(broker, queues)
    got = fetch_all(consumer, 20)
    assert {d.queue for d in got} == set(queues)
    consumer.done(got)
    consumer.close()
    for queue in queues:
        assert kafka.committed(queue, 2) == kafka.high_watermarks(queue, 2)


def test_depth_and_purge(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2)
    queue = new_queue()
    assert broker.depth(queue) == 0  # no topic yet
    broker.publish(messages(queue, 30))
    broker.flush(10)
    assert broker.depth(queue) == 30
    consumer = kafka.consumer(broker, [queue])
    consumer.done(fetch_all(consumer, 10, batch=10))
    consumer.close()
    assert broker.depth(queue) == 20
    assert broker.purge(queue) == 20
    assert broker.depth(queue) == 0
    broker.publish(messages(queue, 5, prefix="new"))
    broker.flush(10)
    assert broker.depth(queue) == 5
    again = kafka.consumer(broker, [queue])
    assert sorted(d.body for d in fetch_all(again, 5)) == sorted(f"new{i}".encode() for i in range(5))


def test_delivery_errors_reach_the_hook(kafka: Harness) -> None:
    # The client accepts 2 MB, the broker (1 MB default) refuses it after the fact.
    broker = kafka.broker(partitions=1, **{"message.max.bytes": 5_000_000})
    queue = new_queue()
    failures: list[tuple[Optional[str], str]] = []
    broker.on_delivery_error = lambda task_id, error: failures.append((task_id, error))
    envelope = Envelope(id="too-big", task="tests.big", args=("x" * 2_000_000,), queue=queue)
    broker.publish([Message(queue, encode(envelope), None, envelope.headers())])
    assert broker.flush(30) == 0
    assert broker.delivery_errors == 1
    assert failures and failures[0][0] == "too-big"
    assert "TOO_LARGE" in failures[0][1]
