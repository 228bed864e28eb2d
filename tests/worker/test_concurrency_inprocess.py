"""Concurrency limits per key with an in-process worker, on memory:// (the reference logic),
on SQLite (its tables) and on Redis (slots.lua, with an in-memory broker)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yadtq import YADTQ, states
from yadtq.transports.slots_store import ConcurrencyBackend
from yadtq.worker.main import Worker


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[YADTQ]:
    if request.param == "redis":  # the Lua steps, fed by an in-memory broker
        prefix = f"conc-{uuid.uuid4().hex[:10]}"
        app = YADTQ("conc", broker="memory://", backend=request.getfixturevalue("redis_url"),
                    backend_options={"prefix": prefix})
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'yadtq.db'}"
        app = YADTQ("conc", broker=url, backend=url)
    try:
        yield app
    finally:
        app.close()


class Gauge:
    """Runs at once per key, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.total_most = 0

    def enter(self, key: str) -> None:
        with self.lock:
            self.now[key] += 1
            self.most[key] = max(self.most[key], self.now[key])
            self.total_most = max(self.total_most, sum(self.now.values()))

    def leave(self, key: str) -> None:
        with self.lock:
            self.now[key] -= 1


@pytest.mark.timeout(60)
def test_at_most_n_per_key_and_keys_in_parallel(app: YADTQ) -> None:
    gauge = Gauge()

    @app.task(concurrency_limit=2, concurrency_key="tenant")
    def job(tenant: str, n: int) -> int:
        gauge.enter(tenant)
        time.sleep(0.05)
        gauge.leave(tenant)
        return n

    worker = Worker(app, name="w", concurrency=8).start()
    try:
        results = [job.delay(t, n) for n in range(10) for t in ("a", "b", "c")]
        assert sorted(r.get(timeout=30) for r in results) == sorted(list(range(10)) * 3)
    finally:
        worker.stop(timeout=30)
    assert max(gauge.most.values()) == 2, gauge.most
    assert gauge.total_most > 2  # different keys ran at once
    backend = app.backend
    assert isinstance(backend, ConcurrencyBackend)
    assert backend.concurrency_slots() == []  # every slot given back


@pytest.mark.timeout(60)
def test_a_callable_key_and_a_task_wide_limit(app: YADTQ) -> None:
    gauge = Gauge()

    @app.task(concurrency_limit=1, concurrency_key=lambda order: order["shop"])
    def by_shop(order: dict[str, Any]) -> str:
        gauge.enter("shop:" + order["shop"])
        time.sleep(0.02)
        gauge.leave("shop:" + order["shop"])
        return str(order["shop"])

    @app.task(concurrency_limit=1)
    def alone(n: int) -> int:
        gauge.enter("alone")
        time.sleep(0.02)
        gauge.leave("alone")
        return n

    worker = Worker(app, name="w", concurrency=6).start()
    try:
        shops = [by_shop.delay({"shop": s}) for s in "xyxyxy"]
        lone = [alone.delay(n) for n in range(6)]
        assert [r.get(timeout=30) for r in shops] == list("xyxyxy")
        assert [r.get(timeout=30) for r in lone] == list(range(6))
    finally:
        worker.stop(timeout=30)
    assert gauge.most["shop:x"] == gauge.most["shop:y"] == gauge.most["alone"] == 1


@pytest.mark.timeout(60)
def test_a_waiting_task_is_scheduled_and_listed_with_its_holder(app: YADTQ) -> None:
    gate = threading.Event()

    @app.task(concurrency_limit=1, concurrency_key="tenant")
    def hold(tenant: str) -> str:
        gate.wait(20)
        return tenant

    worker = Worker(app, name="w", concurrency=4).start()
    try:
        first = hold.delay("t1")
        deadline = time.monotonic() + 10
        while first.state != states.PROCESSING and time.monotonic() < deadline:
            time.sleep(0.02)
        second = hold.delay("t1")
        while second.state != states.SCHEDULED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.state == states.SCHEDULED
        backend = app.backend
        assert isinstance(backend, ConcurrencyBackend)
        [info] = backend.concurrency_slots()
        assert (info.value, info.limit, info.waiting) == ("t1", 1, (second.id,))
        assert [h.task_id for h in info.holders] == [first.id]
        gate.set()
        assert second.get(timeout=20) == "t1"
    finally:
        gate.set()
        worker.stop(timeout=30)


@pytest.mark.timeout(60)
def test_failures_and_retries_give_the_slot_back(app: YADTQ) -> None:
    gauge = Gauge()
    tries: Counter[int] = Counter()

    @app.task(concurrency_limit=1, concurrency_key="tenant", max_retries=2, retry_delay=0.05,
              retry_jitter=False)
    def flaky(tenant: str, n: int) -> int:
        gauge.enter(tenant)
        try:
            tries[n] += 1
            if n == 0:
                raise ValueError("always fails")
            if tries[n] == 1:
                raise RuntimeError("fails once")
            return n
        finally:
            gauge.leave(tenant)

    worker = Worker(app, name="w", concurrency=4).start()
    try:
        results = [flaky.delay("t", n) for n in range(4)]
        with pytest.raises(Exception, match="always fails"):
            results[0].get(timeout=30)
        assert [r.get(timeout=30) for r in results[1:]] == [1, 2, 3]
    finally:
        worker.stop(timeout=30)
    assert tries == {0: 3, 1: 2, 2: 2, 3: 2} and gauge.most["t"] == 1
    backend = app.backend
    assert isinstance(backend, ConcurrencyBackend)
    assert backend.concurrency_slots() == []


@pytest.mark.timeout(60)
def test_a_waiting_task_revoked_is_dropped_at_its_turn(app: YADTQ) -> None:
    gate = threading.Event()
    ran: list[int] = []

    @app.task(concurrency_limit=1, concurrency_key="tenant")
    def hold(tenant: str, n: int) -> int:
        ran.append(n)
        if n == 0:
            gate.wait(20)
        return n

    worker = Worker(app, name="w", concurrency=4).start()
    try:
        first = hold.delay("t", 0)
        deadline = time.monotonic() + 10
        while first.state != states.PROCESSING and time.monotonic() < deadline:
            time.sleep(0.02)
        second, third = hold.delay("t", 1), hold.delay("t", 2)
        while third.state != states.SCHEDULED and time.monotonic() < deadline:
            time.sleep(0.02)
        second.revoke()
        gate.set()
        assert third.get(timeout=20) == 2 and first.get(timeout=20) == 0
        assert second.state == states.REVOKED and ran == [0, 2]
    finally:
        gate.set()
        worker.stop(timeout=30)
