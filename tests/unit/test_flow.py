"""Flow control: rate limit specs, the sliding-window decision, the memory backend's step."""

from __future__ import annotations

import time

import pytest

from yadtq import YADTQ
from yadtq.exceptions import ConfigurationError
from yadtq.flow import RateLimit, admit, next_start, parse_rate_limit
from yadtq.transports.base import Message, ScheduledMessage
from yadtq.transports.limits_store import RateRequest

pytestmark = pytest.mark.timeout(30)


def test_parse_rate_limit() -> None:
    assert parse_rate_limit("100/s") == RateLimit(100, 1.0)
    assert parse_rate_limit(" 10 / m ") == RateLimit(10, 60.0)
    assert str(parse_rate_limit("5/h")) == "5/h"
    for bad in ("0/s", "10", "10/d", "-1/s", "x/s", ""):
        with pytest.raises(ConfigurationError, match="rate_limit"):
            parse_rate_limit(bad)


def test_task_accepts_and_validates_rate_limit() -> None:
    app = YADTQ("t", broker="memory://", backend="memory://")

    @app.task(rate_limit="3/s")
    def ok() -> None: ...

    assert ok.options.rate_limit == "3/s"
    with pytest.raises(ConfigurationError, match=r"task 'bad'.*rate_limit"):
        app.task(name="bad", rate_limit="3 per second")(lambda: None)


def test_next_start_is_a_sliding_window_without_burst() -> None:
    assert next_start([], 2, 10.0, 100.0) == 100.0
    assert next_start([95.0], 2, 10.0, 100.0) == 100.0
    assert next_start([95.0, 99.0], 2, 10.0, 100.0) == 105.0  # the oldest leaves the window
    assert next_start([95.0, 99.0, 105.0], 2, 10.0, 100.0) == 109.0


def test_admit_spreads_a_backlog_and_keeps_each_attempt_once() -> None:
    starts: dict[str, float] = {}
    times = [admit(starts, f"a{i}", 3, 60.0, 1000.0) for i in range(7)]
    assert times == [1000.0] * 3 + [1060.0] * 3 + [1120.0]
    assert admit(starts, "a4", 3, 60.0, 1000.5) == 1060.0  # asked again: the same reservation
    assert admit(starts, "a0", 3, 60.0, 1059.0) == 1000.0  # still held: starts now
    assert admit(starts, "late", 3, 60.0, 1121.0) == 1121.0  # only a6 is left in the window


def test_memory_backend_schedules_what_must_wait() -> None:
    app = YADTQ("t", broker="memory://", backend="memory://")
    backend = app.backend

    def request(i: int) -> RateRequest:
        return RateRequest("job", f"id{i}:0", 2, 60.0,
                           ScheduledMessage(f"id{i}", 0.0, Message("default", b"body")))

    answers = backend.admit_rate([request(i) for i in range(3)])  # type: ignore[attr-defined]
    assert answers[:2] == [None, None]
    assert answers[2] is not None and answers[2] > time.time() + 50
    due = backend.next_due()
    assert due is not None and answers[2] < due <= answers[2] + 0.6  # the slack after the slot
    assert backend.claim_due(due, 10, 30)[0].task_id == "id2"


def test_a_task_over_its_limit_waits_in_the_schedule_with_its_reason() -> None:
    from yadtq import states
    from yadtq.worker.main import Worker

    app = YADTQ("t", broker="memory://", backend="memory://")

    @app.task(rate_limit="2/h")
    def hourly(n: int) -> int:
        return n

    @app.task
    def plain(n: int) -> int:
        return n

    worker = Worker(app, name="flow-worker", concurrency=2).start()
    try:
        results = [hourly.delay(i) for i in range(3)]
        assert [r.get(timeout=10) for r in results[:2]] == [0, 1]
        assert plain.delay(5).get(timeout=10) == 5  # not held behind the waiting one
        deadline = time.monotonic() + 10
        while results[2].state != states.SCHEDULED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert results[2].state == states.SCHEDULED
        waiting = app.backend.snapshot().scheduled_tasks
        assert [(t.task_id, t.reason) for t in waiting] == [(results[2].id, "rate_limit 2/h")]
        assert waiting[0].timestamp > time.time() + 3500  # due when the hour's window slides
    finally:
        worker.stop()
        app.close()
