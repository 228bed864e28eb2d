"""Kafka priority lanes against a real Kafka: routing, order under a backlog, depth,
purge and dead letters per lane. Needs ``YADTQ_TEST_KAFKA``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from yadtq.namespace import Naming
from yadtq.priority import HEADER_PRIORITY
from yadtq.transports.base import Message
from yadtq.transports.kafka_naming import lane_topics

from .test_kafka_broker import Harness, fetch_all, messages, new_queue, pump

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[Harness]:
    harness = Harness(kafka_bootstrap)
    yield harness
    harness.close()


def urgent(queue: str, name: str, level: int) -> Message:
    return Message(queue, name.encode(), name.encode(),
                   {"yadtq-id": name.encode(), HEADER_PRIORITY: str(level).encode()})


def test_high_lanes_are_handed_out_before_a_fetched_backlog(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2)
    queue = new_queue()
    broker.publish([urgent(queue, "warm5", 5), urgent(queue, "warm9", 9)])  # creates both lanes
    consumer = kafka.consumer(broker, [queue])
    member = consumer._members[0]
    pump(consumer, lambda: bool(member.buffers[1] and member.buffers[2]), 30, "both lanes fetched")
    warm = consumer.fetch(2, 1.0)
    assert [d.body for d in warm] == [b"warm9", b"warm5"]  # highest lane first
    assert {d.token.topic for d in warm} == set(lane_topics(Naming(), queue)[1:])
    assert all(d.queue == queue for d in warm)
    consumer.done(warm)
    broker.publish(messages(queue, 2000))
    broker.flush(10)
    pump(consumer, lambda: member.waiting() > 100, 20, "the backlog to be fetched")
    broker.publish([urgent(queue, "late6", 6), urgent(queue, "late8", 8)])
    broker.flush(10)
    # A worker with one slot running 10 ms tasks: the urgent ones start within the next
    # few hundred milliseconds, not after the ~2,000 queued before them.
    handed: list[bytes] = []
    while not {b"late6", b"late8"} <= set(handed) and len(handed) < 2000:
        got = consumer.fetch(1, 0.1)
        handed += [d.body for d in got]
        consumer.done(got)
        time.sleep(0.01)
    # (Each urgent one is handed out as soon as its lane's fetch response is in.)
    assert max(handed.index(b"late8"), handed.index(b"late6")) < 300, len(handed)


def test_depth_purge_and_dead_letters_cover_every_lane(kafka: Harness) -> None:
    broker = kafka.broker(partitions=2)
    queue = new_queue()
    broker.publish([*messages(queue, 3), urgent(queue, "u7", 7), urgent(queue, "u4", 4)])
    broker.flush(10)
    assert broker.depth(queue) == 5
    assert broker.depth_by_priority(queue) == {"0-3": 3, "4-6": 1, "7-9": 1}
    consumer = kafka.consumer(broker, [queue])
    got = fetch_all(consumer, 5)
    (high,) = [d for d in got if d.body == b"u7"]
    consumer.dead_letter(high, "testing lanes")
    consumer.done([d for d in got if d is not high])
    consumer.close()
    assert broker.depth(queue) == 0
    (letter,) = [d for d in broker.list_dead_letters(50) if d.task_id == "u7"]
    assert letter.queue == queue  # the lane topic is mapped back to its queue
    broker.requeue_dead_letters([letter.id])
    broker.flush(10)
    assert broker.depth_by_priority(queue) == {"7-9": 1}  # back in its own lane
    assert broker.purge(queue) == 1
    assert broker.depth(queue) == 0
