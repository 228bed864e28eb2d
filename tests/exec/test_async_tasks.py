"""``async def`` tasks (DESIGN.md §13): many at once on one worker, sync and async side by
side, on the asyncio and threads pools, and an asyncio client that awaits results."""

from __future__ import annotations

import asyncio

import pytest

from yadtq import TimeoutError as ResultTimeout
from yadtq import states
from yadtq.exceptions import TimeLimitExceeded

from ..worker.procs import running_workers, wait_ready
from .conftest import APP, Stack

pytestmark = pytest.mark.slow


def test_1000_async_tasks_run_at_once_on_one_worker(stack: Stack) -> None:
    app, crowd, nap = stack.module.app, stack.module.crowd, stack.module.nap
    with running_workers(1, APP, stack.env, stack.logdir, ["--pool", "asyncio", "-c", "1000"]) as workers:
        wait_ready(workers, app.get_worker_status)
        # Each waits until all 1000 run at once on the worker's loop: only true concurrency passes.
        results = [crowd.delay(1000, 90) for _ in range(1000)]
        peaks = [r.get(timeout=120) for r in results]
        assert peaks == [1000] * 1000
        naps = [nap.delay(1, i) for i in range(1000)]
        assert [r.get(timeout=120) for r in naps] == list(range(1000))
    assert {r.worker for r in results} == {workers[0].name}


@pytest.mark.parametrize("pool", ["asyncio", "threads", "processes"])
def test_sync_and_async_tasks_share_a_worker(stack: Stack, pool: str) -> None:
    if stack.name == "kafka" and pool != "asyncio":
        pytest.skip("the pools are transport-independent; SQLite covers them")
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir, ["--pool", pool, "-c", "4"]):
        sync = [m.blocking_add.delay(i, 1, 0.05) for i in range(8)]
        coros = [m.nap.delay(0.05, i) for i in range(8)]
        assert [r.get(timeout=60) for r in sync] == [i + 1 for i in range(8)]
        assert [r.get(timeout=60) for r in coros] == list(range(8))
        with pytest.raises(LookupError, match="no luck"):
            m.async_fails.delay("no luck").get(timeout=30)


@pytest.mark.parametrize("pool", ["asyncio", "processes"])
def test_time_limit_cancels_an_async_task(stack: Stack, pool: str) -> None:
    if stack.name == "kafka" and pool != "asyncio":
        pytest.skip("the pools are transport-independent; SQLite covers them")
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir, ["--pool", pool, "-c", "2"]):
        result = m.hangs.delay("limited")
        with pytest.raises(TimeLimitExceeded, match="time limit"):
            result.get(timeout=30)
        assert m.add.delay(1, 2).get(timeout=30) == 3  # the worker goes on
    assert result.state == states.FAILED
    assert not stack.effect_lines("limited.finished")
    if pool == "asyncio":  # (a process child may still be importing the app when the limit strikes)
        assert stack.effect_lines("limited.started")


def test_asyncio_client_awaits_results(stack: Stack) -> None:
    m = stack.module

    async def client() -> None:
        sent = await m.nap.adelay(0.1, 7)
        assert await sent == 7
        assert await sent.aget(timeout=5) == 7
        many = [await m.add.adelay(i, i) for i in range(100)]
        assert await asyncio.gather(*many) == [2 * i for i in range(100)]
        slow = await m.nap.aapply_async((2, 0))
        with pytest.raises(ResultTimeout):
            await slow.aget(timeout=0.3)
        with pytest.raises(LookupError):
            await (await m.async_fails.adelay("remote")).aget(timeout=30)

    with running_workers(1, APP, stack.env, stack.logdir, ["--pool", "asyncio", "-c", "200"]):
        asyncio.run(asyncio.wait_for(client(), 90))
