"""Hooks in ``yadtq.signals`` (DESIGN.md §13): each called with its keyword arguments, where
the task runs; a receiver that raises is logged and never changes the task's outcome."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq import YADTQ, signals, states
from yadtq.exceptions import TimeLimitExceeded
from yadtq.worker.main import Worker

from ..worker.procs import running_workers, wait_ready
from .conftest import APP, Stack


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_hooks_in_real_workers(stack: Stack, pool: str) -> None:
    if stack.name == "kafka" and pool == "threads":
        pytest.skip("hooks are sent by the executor, the same on every transport")
    m = stack.module
    env = {**stack.env, "YADTQ_TEST_HOOKS": "1"}
    with running_workers(1, APP, env, stack.logdir, ["--pool", pool, "-c", "2"]) as workers:
        wait_ready(workers, m.app.get_worker_status)
        ok = m.add.delay(2, 3)
        bad = m.async_fails.delay("nope")
        flaky = m.flaky.delay("flaky", 1)
        assert ok.get(timeout=30) == 5
        assert flaky.get(timeout=30) == "recovered"
        with pytest.raises(LookupError):
            bad.get(timeout=30)
        if pool == "processes":  # attempts the child cannot report: the worker does
            overran = m.sleeper.apply_async(("overran",), time_limit=1)
            with pytest.raises(TimeLimitExceeded):
                overran.get(timeout=30)
            killed = m.dies_once.delay("killed")
            assert killed.get(timeout=60) == "survived"
    lines = stack.effect_lines("hooks")
    worker = workers[0].name
    assert sum(line.startswith(f"ready {worker} ") for line in lines) == 1
    assert lines[-1] == f"shutdown {worker}"
    children = [line for line in lines if line.startswith("child ")]
    # Processes: two children, and one in place of each of the two killed.
    assert (len(children) == 4 and all(c.startswith(f"child {worker} ") for c in children)) \
        if pool == "processes" else not children
    assert f"prerun {ok.id} tests.apps.exec_app.add [2, 3] {{}}" in lines
    assert f"success {ok.id} 5" in lines and f"postrun {ok.id} success int" in lines
    assert f"failure {bad.id} LookupError True" in lines and f"postrun {bad.id} failed LookupError" in lines
    assert f"retry {flaky.id} ConnectionError True" in lines
    assert f"postrun {flaky.id} retrying ConnectionError" in lines
    assert f"success {flaky.id} 'recovered'" in lines
    log = workers[0].log()
    assert "a broken hook must not change the outcome" in log  # from a child too
    if pool == "processes":
        assert f"failure {overran.id} TimeLimitExceeded False" in lines
        assert f"postrun {overran.id} failed TimeLimitExceeded" in lines
        assert f"retry {killed.id} WorkerLostError True" in lines
        assert f"postrun {killed.id} retrying WorkerLostError" in lines
        assert f"success {killed.id} 'survived'" in lines
        # The receiver's traceback too: its last line names the exception.
        assert "RuntimeError: a broken child hook is logged in the worker's log" in log


@pytest.fixture
def memory_app() -> Iterator[YADTQ]:
    app = YADTQ("hooks", broker="memory://", backend="memory://")
    yield app
    app.close()


@pytest.mark.timeout(60)
def test_receivers_get_the_documented_arguments(memory_app: YADTQ,
                                                caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def receive(**kwargs: Any) -> None:
            calls.append((name, kwargs))
        return receive

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    names = ("task_prerun", "task_postrun", "task_success", "task_failure", "task_retry",
             "worker_ready", "worker_shutdown")
    receivers = {n: recorder(n) for n in names}
    for n, receiver in receivers.items():
        getattr(signals, n).connect(receiver)
    signals.task_success.connect(broken)

    @memory_app.task(max_retries=1, retry_delay=0.01)
    def div(x: int, y: int) -> float:
        return x / y

    try:
        worker = Worker(memory_app, concurrency=2).start()
        with caplog.at_level(logging.ERROR, logger="yadtq.signals"):
            assert div.delay(6, 3).get(timeout=10) == 2.0
        with pytest.raises(ZeroDivisionError):
            div.delay(1, 0).get(timeout=10)
        worker.stop(10)
    finally:
        for n, receiver in receivers.items():
            getattr(signals, n).disconnect(receiver)
        signals.task_success.disconnect(broken)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for name, kwargs in calls:
        by_name.setdefault(name, []).append(kwargs)
    for name in names:
        assert set(by_name[name][0]) == set(getattr(signals, name).arguments), name
    assert by_name["task_prerun"][0]["task"] is div and by_name["task_prerun"][0]["args"] == (6, 3)
    assert by_name["task_success"][0]["result"] == 2.0
    assert isinstance(by_name["task_retry"][0]["reason"], ZeroDivisionError)
    assert isinstance(by_name["task_failure"][0]["exception"], ZeroDivisionError)
    assert [k["state"] for k in by_name["task_postrun"]] == [states.SUCCESS, states.RETRYING,
                                                             states.FAILED]
    assert by_name["worker_ready"] == [{"worker": worker}]
    assert by_name["worker_shutdown"] == [{"worker": worker}]
    assert any("boom" in r.getMessage() or "broken" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
def test_an_async_task_past_its_time_limit_sends_task_failure(memory_app: YADTQ) -> None:
    import asyncio

    from yadtq.exceptions import TimeLimitExceeded

    failures: list[dict[str, Any]] = []

    def receive(**kwargs: Any) -> None:
        failures.append(kwargs)

    @memory_app.task(time_limit=0.2)
    async def overruns() -> None:
        await asyncio.sleep(30)

    signals.task_failure.connect(receive)
    try:
        worker = Worker(memory_app, concurrency=2, pool="asyncio").start()
        with pytest.raises(TimeLimitExceeded):
            overruns.delay().get(timeout=20)
        worker.stop(10)
    finally:
        signals.task_failure.disconnect(receive)
    (failure,) = failures
    assert failure["task"] is overruns and isinstance(failure["exception"], TimeLimitExceeded)
    assert isinstance(failure["traceback"], str) and "TimeLimitExceeded" in failure["traceback"]


def test_connect_is_a_decorator_with_or_without_parentheses() -> None:
    hook = signals.Signal("test_hook", ("value",))
    seen: list[int] = []

    @hook.connect
    def one(value: int, **extra: Any) -> None:
        seen.append(value)

    @hook.connect()
    def two(value: int, **extra: Any) -> None:
        seen.append(value * 10)

    hook.connect(one)  # once only
    hook.send(value=2)
    assert seen == [2, 20] and callable(one) and callable(two)
    hook.disconnect(one)
    hook.send(value=3)
    assert seen == [2, 20, 30]
