"""A librdkafka consumer whose close never returns (a rebalance served inside close can
deadlock it) must not hold a stopping worker for good."""

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
