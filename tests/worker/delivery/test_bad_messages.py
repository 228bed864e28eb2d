"""Any bad message is dead-lettered with its reason and the batch goes on (case 4)."""

from __future__ import annotations

from typing import Optional

import pytest

from yadtq import YADTQ, states
from yadtq.envelope import Envelope, encode
from yadtq.transports.base import Message
from yadtq.worker.main import Worker

from ..helpers import wait_until
from .support import Runs, bad_messages, publish

pytestmark = pytest.mark.timeout(60)


def test_bad_messages_are_dead_lettered_and_the_batch_goes_on(app: YADTQ) -> None:
    runs = Runs()

    @app.task
    def job(x: int) -> int:
        runs.hit(x)
        return x

    bad = bad_messages(job.name)
    for _, data in bad:
        app.broker.publish([Message("default", data)])
    after = [job.delay(n) for n in range(100, 105)]
    worker = Worker(app, name="w6", concurrency=2, pool="threads").start()
    try:
        assert [r.get(timeout=10) for r in after] == list(range(100, 105))
        wait_until(lambda: len(app.broker.dead_letters()) == len(bad), 10)
        wait_until(lambda: worker._consumer is not None and worker._consumer.in_flight() == 0, 10)
        assert runs.count(1) == 0
        # Unverified ids are never failed: each rejection has a dead-letter id of its own.
        assert app.AsyncResult("victim").state != states.FAILED
        failures = app.backend.snapshot().recent_failures
        assert len([f for f in failures if f.task_id.startswith("dlq-")]) == len(bad)
    finally:
        worker.stop(10)


def _signed_with(secret: Optional[str]) -> YADTQ:
    return YADTQ("s", broker="memory://", backend="memory://", secret_key=secret)


def test_signed_but_invalid_message_fails_its_own_task() -> None:
    """A verified signature vouches for the id: the submitter learns why its task failed."""
    app = _signed_with("k")
    try:
        @app.task
        def job(x: int) -> int:
            return x

        envelope = Envelope(id="signed-bad", task=job.name, args=(1,), options={"time_limit": "soon"})
        app.broker.publish([Message("default", encode(envelope, "k"))])
        worker = Worker(app, name="w7", concurrency=1).start()
        try:
            with pytest.raises(Exception, match="time_limit"):
                app.AsyncResult(envelope.id).get(timeout=10)
        finally:
            worker.stop(10)
    finally:
        app.close()


def test_a_result_over_result_max_bytes_fails_its_task_and_the_rest_is_stored() -> None:
    app = YADTQ("big", broker="memory://", backend="memory://", result_max_bytes=1000)
    try:
        @app.task(max_retries=3)
        def blob(n: int) -> bytes:
            return b"x" * n

        worker = Worker(app, name="w8", concurrency=2).start()
        try:
            big, small = blob.delay(5000), blob.delay(10)
            with pytest.raises(Exception, match="result_max_bytes"):
                big.get(timeout=10)
            assert big.state == states.FAILED and big.retries == 0
            assert small.get(timeout=10) == b"x" * 10
        finally:
            worker.stop(10)
    finally:
        app.close()


def test_wrong_arity_is_dead_lettered_with_its_reason_and_never_entered(app: YADTQ) -> None:
    """Arguments that do not fit the task's signature are checked before a claim: the
    message is dead-lettered with the reason (like any unrunnable message), its task is
    recorded failed with TypeError, the function is never entered, the next task runs."""
    runs = Runs()

    @app.task
    def two(x: int, y: int) -> int:
        runs.hit((x, y))
        return x + y

    bad = Envelope(id="arity-4", task=two.name, args=(1, 2, 3, 4))
    kw = Envelope(id="arity-kw", task=two.name, args=(1,), kwargs={"y": 2, "z": 3})
    worker = Worker(app, name="wa", concurrency=2).start()
    try:
        publish(app, bad)
        publish(app, kw)
        assert two.delay(1, 2).get(timeout=10) == 3
        wait_until(lambda: len(app.broker.list_dead_letters()) == 2, 10)
        reasons = {d.reason for d in app.broker.list_dead_letters()}
        assert any("two() too many positional arguments" in r for r in reasons), reasons
        assert any("unexpected keyword argument 'z'" in r for r in reasons), reasons
        for envelope in (bad, kw):
            with pytest.raises(TypeError, match=r"two\(\) "):
                app.AsyncResult(envelope.id).get(timeout=10)
        assert runs.calls == [(1, 2)]
    finally:
        worker.stop(10)
