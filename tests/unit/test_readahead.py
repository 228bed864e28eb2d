"""``get()`` reads the results of this process's other sent tasks in the same round trip
(issue 9: a client waiting for many results in turn pays one read per 32, not one each)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from yadtq import YADTQ, readahead, states
from yadtq.worker.main import Worker

pytestmark = pytest.mark.timeout(60)


def _counting(app: YADTQ) -> dict[str, int]:
    calls = {"get": 0, "wait": 0}
    backend = app.backend
    get, wait = backend.get, backend.wait

    def counted_get(ids: Any) -> Any:
        calls["get"] += 1
        return get(ids)

    def counted_wait(task_id: str, timeout: Any) -> Any:
        calls["wait"] += 1
        return wait(task_id, timeout)

    backend.get = counted_get  # type: ignore[method-assign]
    backend.wait = counted_wait  # type: ignore[method-assign]
    return calls


def test_finished_results_are_read_in_batches_and_keep_their_values() -> None:
    app = YADTQ("ahead", broker="memory://", backend="memory://")

    @app.task(name="t.square")
    def square(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x * x

    results = [square.delay(i) for i in range(100)]
    worker = Worker(app, concurrency=4).start()
    try:
        deadline = time.monotonic() + 30
        while any(r.state not in states.READY_STATES for r in results):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for r in results:  # the loop above read each record once, but not for get()
            r._ready = None
        calls = _counting(app)
        values = [r.get(timeout=10, propagate=False) for r in results]
    finally:
        worker.stop(30)
    assert [v for i, v in enumerate(values) if i != 7] == [i * i for i in range(100) if i != 7]
    assert isinstance(values[7], ValueError)
    assert calls["wait"] == 0
    assert calls["get"] <= -(-100 // readahead.READ_AHEAD) + 1
    # Read ahead once, not cached: the next read of a handle asks the backend again.
    assert results[5].get(timeout=10) == 25
    assert calls["wait"] == 1


def test_a_result_not_ready_is_still_waited_for() -> None:
    app = YADTQ("ahead", broker="memory://", backend="memory://")

    @app.task(name="t.slow")
    def slow(x: int) -> int:
        time.sleep(0.3)
        return x

    results = [slow.delay(i) for i in range(3)]
    calls = _counting(app)
    worker = Worker(app, concurrency=1).start()
    try:
        assert [r.get(timeout=30) for r in results] == [0, 1, 2]
    finally:
        worker.stop(30)
    assert calls["wait"] >= 1  # the first was not ready when asked: waited by notification


def test_tracking_is_bounded_and_forgotten_results_leave_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "REMEMBERED", 50)
    app = YADTQ("ahead", broker="memory://", backend="memory://")

    @app.task(name="t.noop")
    def noop() -> None:
        return None

    results = [noop.delay() for _ in range(80)]
    assert len(app.readahead.tracked()) == 50
    results[-1].forget()
    assert results[-1].id not in app.readahead.tracked()
