"""A librdkafka consumer whose close or last commit never returns (a rebalance served
inside close can deadlock it; a sync commit has no deadline of its own) must not hold a
stopping worker for good."""

from __future__ import annotations

import logging
import threading
import time

import pytest

kafka_member = pytest.importorskip("yadtq.transports.kafka_member")

pytestmark = pytest.mark.timeout(30)


class _Client:
    def __init__(self, block: threading.Event | None = None, error: Exception | None = None) -> None:
        self.block, self.error = block, error

    def close(self) -> None:
        if self.block is not None:
            self.block.wait()
        if self.error is not None:
            raise self.error


def _member(client: _Client) -> object:
    member = kafka_member._Member("q", ["yadtq.q"])
    member.client = client
    return member


def _committed(calls: list[str]) -> None:
    calls.append("commit")


@pytest.mark.parametrize("stuck", ["close", "commit"])
def test_a_close_that_never_returns_is_abandoned_after_the_timeout(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stuck: str) -> None:
    monkeypatch.setattr(kafka_member, "CLOSE_TIMEOUT", 0.3)
    never = threading.Event()
    client = _Client(block=never if stuck == "close" else None)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        kafka_member._close_member(_member(client), never.wait if stuck == "commit" else lambda: None)
    assert time.monotonic() - started < 5
    assert any("did not close within" in r.getMessage() for r in caplog.records)
    never.set()


def test_the_last_commit_comes_before_the_close() -> None:
    calls: list[str] = []

    class Client(_Client):
        def close(self) -> None:
            calls.append("close")

    kafka_member._close_member(_member(Client()), lambda: _committed(calls))
    assert calls == ["commit", "close"]


def test_an_error_of_the_close_reaches_the_caller() -> None:
    with pytest.raises(RuntimeError, match="closed twice"):
        kafka_member._close_member(_member(_Client(error=RuntimeError("closed twice"))), lambda: None)


class _Subscribed(_Client):
    """A client whose revocation arrives on the second poll after unsubscribing."""

    def __init__(self, member: object, calls: list[str]) -> None:
        super().__init__()
        self.member, self.calls, self.polls = member, calls, 0

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    def consume(self, num_messages: int, timeout: float) -> list[object]:
        self.polls += 1
        if self.polls == 2:
            self.calls.append("revoked")
            self.member.assigned.clear()  # type: ignore[attr-defined]
        return []

    def close(self) -> None:
        self.calls.append("close")


def test_close_serves_the_revocation_before_closing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The revocation is served by a poll after unsubscribing, never inside librdkafka's
    close (where confluent-kafka's fallback can freeze the process: librdkafka#4041)."""
    from yadtq.transports import kafka_consumer

    calls: list[str] = []
    member = kafka_member._Member("q", ["yadtq.q"])
    member.client = _Subscribed(member, calls)
    member.assigned.add(("yadtq.q", 0))
    consumer = kafka_consumer.KafkaConsumer.__new__(kafka_consumer.KafkaConsumer)
    consumer._tracker = kafka_consumer.OffsetTracker()
    monkeypatch.setattr(consumer, "_commit_now", lambda m: calls.append("commit"), raising=False)
    kafka_member._close_member(member, lambda: consumer._leave(member))
    assert calls == ["unsubscribe", "revoked", "commit", "close"]


def test_a_static_member_commits_then_lets_go_without_closing() -> None:
    """KIP-345: a static member's stop sends no LeaveGroup; dropping the client makes
    confluent-kafka destroy it without consumer close (no rebalance callback either)."""
    import gc
    import weakref

    calls: list[str] = []

    class Client(_Client):
        def close(self) -> None:
            calls.append("close")

    member = kafka_member._Member("q", ["yadtq.q"])
    member.client = Client()
    gone = weakref.ref(member.client)
    kafka_member._release_member(member, lambda: calls.append("commit"))
    gc.collect()
    assert calls == ["commit"] and member.client is None and gone() is None
