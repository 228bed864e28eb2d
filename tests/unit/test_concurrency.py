"""Concurrency limits: the spec checked at decoration, the key of a call, and the
reference slot decisions (slots_store.py) the backends follow."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from yadtq import YADTQ
from yadtq.concurrency import key_value, slot_key, waiting_reason
from yadtq.exceptions import ConfigurationError
from yadtq.transports.base import Message, ScheduledMessage, TaskRecord
from yadtq.transports.slots_store import (
    PROMOTED_TTL,
    KeySlots,
    SlotRequest,
    acquire,
    attempt_over,
    release,
    settle,
)

pytestmark = pytest.mark.timeout(30)


def _app() -> YADTQ:
    return YADTQ("t", broker="memory://", backend="memory://")


def test_decoration_accepts_and_validates() -> None:
    app = _app()

    @app.task(concurrency_limit=2, concurrency_key="tenant")
    def by_tenant(tenant: str, n: int = 0) -> None: ...

    @app.task(concurrency_limit=1, concurrency_key=lambda *a, **k: "x")
    def by_callable(n: int) -> None: ...

    @app.task(concurrency_limit=3)
    def whole(n: int) -> None: ...

    @app.task(bind=True, concurrency_limit=1, concurrency_key="tenant")
    def bound(self: Any, tenant: str) -> None: ...

    assert by_tenant.options.concurrency_limit == 2 and whole.options.concurrency_key is None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"concurrency_limit": 0}, "concurrency_limit 0 is not an int >= 1"),
        ({"concurrency_limit": "2"}, "is not an int >= 1"),
        ({"concurrency_limit": True}, "is not an int >= 1"),
        ({"concurrency_key": "tenant"}, "concurrency_key needs a concurrency_limit"),
        ({"concurrency_limit": 1, "concurrency_key": "tnant"},
         r"concurrency_key 'tnant' is not an argument of job\(tenant, n\)"),
        ({"concurrency_limit": 1, "concurrency_key": 3}, "neither an argument name nor a callable"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            @app.task(name=f"bad{len(message)}", **options)
            def job(tenant: str, n: int) -> None: ...
    with pytest.raises(ConfigurationError, match="'self' is not an argument"):
        @app.task(name="bad-self", bind=True, concurrency_limit=1, concurrency_key="self")
        def job2(self: Any, tenant: str) -> None: ...


def test_key_value_of_a_call() -> None:
    def fn(tenant: str, n: int = 0, region: str = "eu", **extra: Any) -> None: ...

    assert key_value(fn, None, ("a",), {}) == ""
    assert key_value(fn, "tenant", ("a", 1), {}) == "a"
    assert key_value(fn, "tenant", (), {"tenant": "b"}) == "b"
    assert key_value(fn, "region", ("a",), {}) == "eu"  # the default applies
    assert key_value(fn, "n", ("a", 7), {}) == "7"
    assert key_value(fn, "shop", ("a",), {"shop": "s1"}) == "s1"  # through **extra
    assert key_value(fn, lambda tenant, **kw: tenant.upper(), ("a",), {}) == "A"
    assert key_value(lambda self, tenant: None, "tenant", ("a",), {}, bind=True) == "a"
    assert slot_key("t", "a") != slot_key("t", "") != slot_key("ta", "")
    long_a, long_b = "x" * 5000 + "a", "x" * 5000 + "b"  # hostile sizes stay bounded
    assert len(slot_key("t", long_a)) < 300 and slot_key("t", long_a) != slot_key("t", long_b)
    assert waiting_reason(2, "tenant", "a") == "concurrency_limit 2 tenant=a"
    assert waiting_reason(1, None, "") == "concurrency_limit 1"


def _request(task_id: str, instance: str = "i1", limit: int = 2, retries: int = 0) -> SlotRequest:
    return SlotRequest("k", "t", "v", limit, task_id, retries, instance,
                       ScheduledMessage(task_id, 0.0, Message("q", task_id.encode())))


class World:
    def __init__(self) -> None:
        self.records: dict[str, TaskRecord] = {}
        self.dead: set[str] = set()

    def record(self, task_id: str) -> Optional[TaskRecord]:
        return self.records.get(task_id)

    def alive(self, instance: str) -> bool:
        return bool(instance) and instance not in self.dead


def test_reference_acquire_wait_release_in_order() -> None:
    w, slots = World(), KeySlots(2)
    run = [acquire(slots, _request(t), w.record, w.alive, 100.0) for t in "abcd"]
    assert [r for r, _ in run] == [True, True, False, False]
    assert list(slots.waiting) == ["c:0", "d:0"]
    assert acquire(slots, _request("a", "i2"), w.record, w.alive, 101.0) == (True, [])  # counted once
    assert slots.holders["a:0"] == ("i2", 101.0)
    assert acquire(slots, _request("c"), w.record, w.alive, 101.0) == (False, [])  # keeps its place
    promoted = release(slots, "a:0", w.record, w.alive, 102.0)
    assert [(m.task_id, m.due) for m in promoted] == [("c", 102.0)]
    assert slots.holders["c:0"] == ("", 102.0)  # reserved until c comes back
    assert acquire(slots, _request("e"), w.record, w.alive, 103.0)[0] is False
    assert acquire(slots, _request("c", "i3"), w.record, w.alive, 103.0) == (True, [])
    assert list(slots.waiting) == ["d:0", "e:0"]


def test_reference_frees_slots_of_dead_or_finished_holders() -> None:
    w, slots = World(), KeySlots(1)
    assert acquire(slots, _request("a", "i1", 1), w.record, w.alive, 0.0)[0]
    assert not acquire(slots, _request("b", "i2", 1), w.record, w.alive, 0.0)[0]
    # a runs on i3 now (redelivered and claimed there): i1 dying does not free it
    w.records["a"] = TaskRecord("a", "processing", instance="i3")
    w.dead.add("i1")
    assert settle(slots, w.record, w.alive, 1.0) == []
    w.dead.add("i3")  # the worker running it is found dead: b gets the slot
    assert [m.task_id for m in settle(slots, w.record, w.alive, 2.0)] == ["b"]
    # b finished but its release was lost: the next step frees the slot
    w.records["b"] = TaskRecord("b", "success")
    assert acquire(slots, _request("c", "i2", 1), w.record, w.alive, 3.0)[0]
    # a promoted slot not taken up in PROMOTED_TTL is given to the next one
    assert not acquire(slots, _request("d", "i2", 1), w.record, w.alive, 4.0)[0]
    w.records["c"] = TaskRecord("c", "retrying", retries=1)  # attempt 0 failed: it is over
    assert [m.task_id for m in settle(slots, w.record, w.alive, 5.0)] == ["d"]
    assert not acquire(slots, _request("e", "i2", 1), w.record, w.alive, 6.0)[0]
    assert settle(slots, w.record, w.alive, 5.0 + PROMOTED_TTL - 1) == []
    assert [m.task_id for m in settle(slots, w.record, w.alive, 5.0 + PROMOTED_TTL)] == ["e"]


def test_reference_skips_waiting_tasks_that_ended() -> None:
    w, slots = World(), KeySlots(1)
    for t in "abc":
        acquire(slots, _request(t, limit=1), w.record, w.alive, 0.0)
    w.records["b"] = TaskRecord("b", "revoked")
    assert [m.task_id for m in release(slots, "a:0", w.record, w.alive, 1.0)] == ["c"]
    assert not slots.waiting


def test_attempt_over() -> None:
    assert not attempt_over(None, 0)
    assert attempt_over(TaskRecord("a", "success"), 0)
    assert attempt_over(TaskRecord("a", "processing", retries=2), 1)
    assert attempt_over(TaskRecord("a", "retrying", retries=1), 0)  # attempt 0 failed
    assert not attempt_over(TaskRecord("a", "retrying", retries=1), 1)  # its retry is to run
    assert not attempt_over(TaskRecord("a", "scheduled", retries=1), 1)
    assert not attempt_over(TaskRecord("a", "processing", retries=1), 1)
