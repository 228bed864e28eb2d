"""A librdkafka consumer whose close or synchronous commit never returns (a rebalance
served inside close can deadlock it; a sync commit has no deadline of its own) must not
hold a stopping worker, or the thread that asked, for good."""

from __future__ import annotations

import logging
import threading
import time

import pytest

kafka_member = pytest.importorskip("yadtq.transports.kafka_member")
from confluent_kafka import TopicPartition  # noqa: E402

from yadtq.transports.kafka_consumer import KafkaConsumer  # noqa: E402
from yadtq.transports.offsets import OffsetTracker  # noqa: E402

pytestmark = pytest.mark.timeout(30)


class _Client:
    def __init__(self, block: threading.Event | None = None, error: Exception | None = None) -> None:
        self.block, self.error = block, error
        self.commits: list[list[TopicPartition]] = []

    def close(self) -> None:
        if self.block is not None:
            self.block.wait()
        if self.error is not None:
            raise self.error

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        assert not asynchronous
        self.commits.append(offsets)
        self.close()  # blocks or raises alike
        return offsets


def _member(client: _Client) -> object:
    member = kafka_member._Member("q", ["yadtq.q"])
    member.client = client
    return member


def test_a_close_that_never_returns_is_abandoned_after_the_timeout(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kafka_member, "CLOSE_TIMEOUT", 0.3)
    never = threading.Event()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        kafka_member._close_member(_member(_Client(block=never)))
    assert time.monotonic() - started < 5
    assert any("did not close within" in r.getMessage() for r in caplog.records)
    never.set()


def test_an_error_of_the_close_reaches_the_caller() -> None:
    with pytest.raises(RuntimeError, match="closed twice"):
        kafka_member._close_member(_member(_Client(error=RuntimeError("closed twice"))))


def _consumer_holding(member: object, done_up_to: int) -> KafkaConsumer:
    """A consumer (built without a broker) whose member has finished offsets 0..done_up_to-1."""
    consumer = KafkaConsumer.__new__(KafkaConsumer)
    consumer._tracker = OffsetTracker()
    for offset in range(done_up_to):
        consumer._tracker.started(("yadtq.q", 0), offset)
        consumer._tracker.finished(("yadtq.q", 0), offset)
    member.assigned.add(("yadtq.q", 0))  # type: ignore[attr-defined]
    return consumer


def test_a_sync_commit_that_never_returns_counts_as_failed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kafka_member, "COMMIT_TIMEOUT", 0.3)
    monkeypatch.setattr("yadtq.transports.kafka_group.COMMIT_TIMEOUT", 0.3)
    never = threading.Event()
    client = _Client(block=never)
    member = _member(client)
    consumer = _consumer_holding(member, 3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        consumer._commit_now(member)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    assert [(tp.topic, tp.partition, tp.offset) for tp in client.commits[0]] == [("yadtq.q", 0, 3)]
    assert any("did not return within" in r.getMessage() for r in caplog.records)
    # Not marked committed: the next commit offers the same position again.
    assert consumer._tracker.committable({("yadtq.q", 0)}) == {("yadtq.q", 0): 3}
    never.set()


def test_a_sync_commit_that_returns_is_marked_committed() -> None:
    client = _Client()
    member = _member(client)
    consumer = _consumer_holding(member, 2)
    consumer._commit_now(member)  # type: ignore[arg-type]
    assert [(tp.topic, tp.partition, tp.offset) for tp in client.commits[0]] == [("yadtq.q", 0, 2)]
    assert consumer._tracker.committable({("yadtq.q", 0)}) == {}
