"""The concurrency-slot steps every backend implements (``ConcurrencyBackend``), on
memory://, SQLite and Redis: order, redeliveries, release, and slots freed when their
holder is found dead or their release was lost."""

from __future__ import annotations

import time
import uuid
from typing import Callable

import pytest

from yadtq.states import RETRYING, SUCCESS
from yadtq.transports.base import Message, ResultBackend, ScheduledMessage, StateChange
from yadtq.transports.slots_store import ConcurrencyBackend, SlotRequest
from yadtq.transports.types import RUN

from .backend_support import SHORT, beat, claim_for

pytestmark = pytest.mark.timeout(60)


def slots_of(backend: ResultBackend) -> ConcurrencyBackend:
    assert isinstance(backend, ConcurrencyBackend)
    return backend


def request(key: str, task_id: str, instance: str = "inst-1", limit: int = 2,
            retries: int = 0) -> SlotRequest:
    message = Message("default", f"body-{task_id}".encode(), None, {"yadtq-task": b"tests.job"})
    return SlotRequest(key, "tests.job", key, limit, task_id, retries, instance,
                       ScheduledMessage(task_id, 0.0, message))


def test_slots_are_taken_in_order_and_handed_on(backend: ResultBackend) -> None:
    slots, key = slots_of(backend), f"k-{uuid.uuid4().hex}"
    beat(backend, "w1", "inst-1")
    ids = [f"t{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    assert slots.acquire_slots([request(key, t) for t in ids]) == ([True, True, False, False], 0)
    # a redelivery of a holder runs (counted once); of a waiting task, keeps waiting
    assert slots.acquire_slots([request(key, ids[0], "inst-2"), request(key, ids[2])]) == ([True, False], 0)
    assert slots.release_slots([(key, ids[0], 0)]) == 1
    due = backend.claim_due(None, 10, 30.0)
    assert [(e.task_id, e.message.body, e.message.headers.get("yadtq-task")) for e in due] == [
        (ids[2], f"body-{ids[2]}".encode(), b"tests.job")]
    backend.release_due(due)
    (info,) = [k for k in slots.concurrency_slots() if k.value == key]
    assert (info.limit, info.waiting, info.waiting_count) == (2, (ids[3],), 1)
    assert {(h.task_id, h.instance) for h in info.holders} == {(ids[1], "inst-1"), (ids[2], "")}
    # the promoted task comes back and takes its reserved slot; a newcomer waits behind ids[3]
    assert slots.acquire_slots([request(key, ids[2]), request(key, "late")]) == ([True, False], 0)
    assert slots.release_slots([(key, ids[1], 0), (key, ids[2], 0)]) == 2
    assert sorted(e.task_id for e in backend.claim_due(None, 10, 30.0)) == sorted([ids[3], "late"])
    assert slots.release_slots([(key, ids[3], 0), (key, "late", 0)]) == 0
    assert [k for k in slots.concurrency_slots() if k.value == key] == []


def test_a_slot_whose_holder_is_found_dead_is_handed_on(
        backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory(**SHORT)
    slots, key = slots_of(backend), f"k-{uuid.uuid4().hex}"
    last_beat = time.monotonic()
    beat(backend, "w1", "inst-1")
    beat(backend, "w2", "inst-2")
    assert slots.acquire_slots([request(key, "a", "inst-1", 1)]) == ([True], 0)
    assert slots.acquire_slots([request(key, "b", "inst-2", 1)]) == ([False], 0)
    end = time.monotonic() + 20
    while not slots.sweep_slots():  # inst-1 is silent from now on
        beat(backend, "w2", "inst-2")
        assert time.monotonic() < end, "the dead holder's slot was never freed"
        time.sleep(0.05)
    assert time.monotonic() - last_beat >= SHORT["worker_unresponsive_after"]
    assert [e.task_id for e in backend.claim_due(None, 10, 30.0)] == ["b"]


def test_a_slot_whose_release_was_lost_is_freed_by_the_sweep(backend: ResultBackend) -> None:
    slots, key = slots_of(backend), f"k-{uuid.uuid4().hex}"
    beat(backend, "w1", "inst-1")
    task_id = uuid.uuid4().hex
    assert slots.acquire_slots([request(key, task_id, limit=1), request(key, "next", limit=1)]) == (
        [True, False], 0)
    assert slots.sweep_slots() == 0  # held while its worker lives and it is not over
    backend.record([StateChange(task_id, SUCCESS, time.time(), worker="w1", result=b"1")])
    assert slots.sweep_slots() == 1  # its outcome is stored: the slot is free
    assert [e.task_id for e in backend.claim_due(None, 10, 30.0)] == ["next"]


def test_a_waiting_retry_is_handed_the_slot(backend: ResultBackend) -> None:
    """A retry waits for a slot while its record still says ``retrying`` (the failed
    attempt's outcome): it is the attempt to run next, never one that is over."""
    slots, key = slots_of(backend), f"k-{uuid.uuid4().hex}"
    beat(backend, "w1", "inst-1")
    holder, retried = uuid.uuid4().hex, uuid.uuid4().hex
    backend.record([StateChange(retried, RETRYING, time.time(), worker="w1", retries=1)])
    retry = request(key, retried, limit=1, retries=1)
    assert slots.acquire_slots([request(key, holder, limit=1), retry]) == ([True, False], 0)
    assert slots.sweep_slots() == 0  # neither attempt is over
    assert slots.release_slots([(key, holder, 0)]) == 1
    assert [e.task_id for e in backend.claim_due(None, 10, 30.0)] == [retried]
    assert slots.acquire_slots([retry]) == ([True], 0)  # takes its reserved slot


def test_a_full_key_hands_the_slot_of_a_finished_holder_to_a_newcomer(backend: ResultBackend) -> None:
    """An acquire that finds the key full looks at its holders in the same step (on
    Redis Cluster: a second call with their records, read from their own slots)."""
    slots, key = slots_of(backend), f"k-{uuid.uuid4().hex}"
    beat(backend, "w1", "inst-1")
    done, running = uuid.uuid4().hex, uuid.uuid4().hex
    assert slots.acquire_slots([request(key, done), request(key, running)]) == ([True, True], 0)
    assert slots.acquire_slots([request(key, "third")]) == ([False], 0)  # both holders live
    backend.record([StateChange(done, SUCCESS, time.time(), worker="w1", result=b"1")])
    # the release was lost: the waiting task is handed the slot, a newcomer still waits
    assert slots.acquire_slots([request(key, "fourth")]) == ([False], 1)
    assert [e.task_id for e in backend.claim_due(None, 10, 30.0)] == ["third"]


def test_a_slot_stays_held_while_the_worker_running_it_lives(
        backend_factory: Callable[..., ResultBackend]) -> None:
    """A redelivery acquired by a second worker that then died, while the first still
    runs the attempt: the slot stays held while the runner (the task record's claim)
    lives, and goes once the runner is silent too (on Redis Cluster the record comes
    from another slot group)."""
    window = 1.5
    backend = backend_factory(worker_unresponsive_after=window, heartbeat_interval=0.2)
    slots, key = slots_of(backend), f"k-{uuid.uuid4().hex}"
    for n in (1, 2, 3):
        beat(backend, f"w{n}", f"inst-{n}")
    task_id = uuid.uuid4().hex
    assert slots.acquire_slots([request(key, task_id, "inst-1", 1)]) == ([True], 0)
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    assert slots.acquire_slots([request(key, task_id, "inst-2", 1)]) == ([True], 0)
    assert slots.acquire_slots([request(key, "next", "inst-3", 1)]) == ([False], 0)
    silent = time.monotonic()  # inst-2, the slot's acquirer now, is silent from here on
    while time.monotonic() - silent < 1.5 * window:
        beat(backend, "w1", "inst-1")
        beat(backend, "w3", "inst-3")
        assert slots.sweep_slots() == 0, "freed while the worker running it lives"
        time.sleep(0.05)
    end = time.monotonic() + 20
    while not slots.sweep_slots():  # inst-1, the runner, is silent too
        beat(backend, "w3", "inst-3")
        assert time.monotonic() < end, "the slot was never freed"
        time.sleep(0.05)
    assert [e.task_id for e in backend.claim_due(None, 10, 30.0)] == ["next"]
