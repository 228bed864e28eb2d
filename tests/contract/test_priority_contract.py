"""Priority order in the broker contract: the brokers that order every level exactly
(memory, SQLite). Kafka orders by lane: tests/integration/test_kafka_lanes.py."""

from __future__ import annotations

from typing import Callable

import pytest

from yadtq.priority import HEADER_PRIORITY
from yadtq.transports.base import Broker, Message

pytestmark = pytest.mark.timeout(60)


def message(queue: str, body: str, level: int) -> Message:
    headers = {"yadtq-id": body.encode()}
    if level:
        headers[HEADER_PRIORITY] = str(level).encode()
    return Message(queue, body.encode(), body.encode(), headers)


def test_highest_priority_first_then_arrival_order(broker: Broker, broker_kind: str,
                                                   queue_name: Callable[[str], str]) -> None:
    if broker_kind == "kafka":
        pytest.skip("Kafka orders by lane, not by level (tests/integration/test_kafka_lanes.py)")
    queue = queue_name("prio")
    broker.publish([message(queue, "a0", 0), message(queue, "b3", 3), message(queue, "c9", 9),
                    message(queue, "d3", 3), message(queue, "e0", 0)])
    broker.publish([message(queue, "f9", 9)])
    assert broker.depth_by_priority(queue) == {"0": 2, "3": 2, "9": 2}
    consumer = broker.consumer([queue])
    first = consumer.fetch(3, 1.0)
    assert [d.body for d in first] == [b"c9", b"f9", b"b3"]
    consumer.close()  # the three go back, and keep their places
    consumer = broker.consumer([queue])
    rest = []
    while len(rest) < 6:
        got = consumer.fetch(2, 1.0)
        assert got
        consumer.done(got)
        rest += [d.body for d in got]
    assert rest == [b"c9", b"f9", b"b3", b"d3", b"a0", b"e0"]
    assert broker.depth_by_priority(queue) == {}
