"""Kafka priority lanes against a real Kafka: routing, order under a backlog, depth,
purge and dead letters per lane. Needs ``YADTQ_TEST_KAFKA``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from yadtq.priority import HEADER_PRIORITY
from yadtq.transports.base import Message
from yadtq.transports.kafka import lane_topics

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
    warm = fetch_all(consumer, 2)
    assert [d.body for d in warm] == [b"warm9", b"warm5"]  # highest lane first
    assert {d.token.topic for d in warm} == set(lane_topics(queue)[1:])
    assert all(d.queue == queue for d in warm)
    consumer.done(warm)
    broker.publish(messages(queue, 2000))
    broker.flush(10)
    first = fetch_all(consumer, 1)  # the worker is busy with one...
    pump(consumer, lambda: consumer._members[0].waiting() > 100, 20, "the backlog to be fetched")
    broker.publish([urgent(queue, "late6", 6), urgent(queue, "late8", 8)])
    broker.flush(10)
    # ... while it is, the backlog sits fetched in the worker; the urgent ones still go first.
    pump(consumer, lambda: all(consumer._members[0].buffers[lane] for lane in (1, 2)), 20,
         "the urgent messages to be fetched")
    assert [d.body for d in consumer.fetch(2, 1.0)] == [b"late8", b"late6"]
    consumer.done(first)


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
