"""The canvas storage contract (``CanvasBackend`` in transports/base.py), on every backend."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Callable

import pytest

from yadtq.states import FAILED, PROCESSING, SUCCESS
from yadtq.transports.base import Message, ResultBackend, ScheduledMessage, StateChange
from yadtq.transports.canvas_store import (
    CHORD_FAILED,
    CHORD_FIRED,
    CHORD_OPEN,
    CanvasBackend,
    ChordJoin,
    GroupSpec,
)


def new_id() -> str:
    return uuid.uuid4().hex


def callback(task_id: str, created: float) -> ScheduledMessage:
    return ScheduledMessage(task_id, created, Message("q", b"callback-body", b"k", {"h": b"v"}))


def chord_of(backend: ResultBackend, size: int) -> tuple[CanvasBackend, GroupSpec]:
    assert isinstance(backend, CanvasBackend)
    spec = GroupSpec(new_id(), tuple(new_id() for _ in range(size)), time.time(),
                     callback(new_id(), time.time()))
    backend.save_groups([spec])
    return backend, spec


def finish(backend: CanvasBackend, spec: GroupSpec, index: int, state: str = SUCCESS) -> None:
    task_id = spec.member_ids[index]
    backend.record_joined([StateChange(task_id, state, time.time(), result=b"\x01")], [],
                          [ChordJoin(spec.group_id, index, task_id)])


def due_ids(backend: ResultBackend) -> list[str]:
    entries = backend.claim_due(time.time() + 1, 100, 30)
    backend.release_due(entries)
    return [e.task_id for e in entries]


def test_a_group_is_stored_and_read_back(backend: ResultBackend) -> None:
    assert isinstance(backend, CanvasBackend)
    spec = GroupSpec(new_id(), ("a", "b", "c"), 1234.5)
    backend.save_groups([spec])
    info = backend.group_info(spec.group_id)
    assert info is not None
    assert info.member_ids == ("a", "b", "c") and info.created == 1234.5
    assert info.callback_id is None and info.state is None
    assert backend.group_info(new_id()) is None


def test_a_chord_fires_its_callback_once_when_every_member_succeeded(backend: ResultBackend) -> None:
    store, spec = chord_of(backend, 3)
    assert spec.callback is not None
    info = store.group_info(spec.group_id)
    assert info is not None and info.state == CHORD_OPEN and info.done == 0
    assert [i.group_id for i in store.open_chords()] == [spec.group_id]
    finish(store, spec, 0)
    finish(store, spec, 0)  # recorded twice: counted once
    finish(store, spec, 1)
    info = store.group_info(spec.group_id)
    assert info is not None and info.done == 2 and info.state == CHORD_OPEN
    assert due_ids(backend) == []
    finish(store, spec, 2)
    info = store.group_info(spec.group_id)
    assert info is not None and info.state == CHORD_FIRED and info.done == 3
    entries = backend.claim_due(time.time() + 1, 100, 30)
    assert [e.task_id for e in entries] == [spec.callback.task_id]
    assert entries[0].message.body == b"callback-body" and entries[0].message.key == b"k"
    backend.release_due(entries)
    finish(store, spec, 2)  # a late duplicate does not fire it again
    assert due_ids(backend) == []
    assert store.open_chords() == []


def test_a_failed_member_fails_the_chord_and_it_never_fires(backend: ResultBackend) -> None:
    store, spec = chord_of(backend, 2)
    finish(store, spec, 0, FAILED)
    finish(store, spec, 1)
    info = store.group_info(spec.group_id)
    assert info is not None and info.state == CHORD_FAILED
    assert info.failed_member == spec.member_ids[0]
    assert due_ids(backend) == []
    assert store.open_chords() == []


def test_a_join_counts_by_the_stored_state_not_the_change(backend: ResultBackend) -> None:
    store, spec = chord_of(backend, 1)
    task_id = spec.member_ids[0]
    backend.record([StateChange(task_id, FAILED, time.time())])
    # A second execution's success is refused (failed is final); its join sees "failed".
    finish(store, spec, 0, SUCCESS)
    info = store.group_info(spec.group_id)
    assert info is not None and info.state == CHORD_FAILED
    assert due_ids(backend) == []


def test_a_join_of_an_unfinished_member_counts_nothing(backend: ResultBackend) -> None:
    store, spec = chord_of(backend, 1)
    finish(store, spec, 0, PROCESSING)
    info = store.group_info(spec.group_id)
    assert info is not None and info.state == CHORD_OPEN and info.done == 0


def test_record_joined_stores_changes_and_schedule_entries_too(backend: ResultBackend) -> None:
    store, spec = chord_of(backend, 2)
    follow = ScheduledMessage(new_id(), time.time(), Message("q", b"next"))
    store.record_joined([StateChange(spec.member_ids[0], SUCCESS, time.time(), result=b"\x05")],
                        [follow], [ChordJoin(spec.group_id, 0, spec.member_ids[0])])
    record = backend.get([spec.member_ids[0]])[0]
    assert record is not None and record.state == SUCCESS and record.result == b"\x05"
    assert due_ids(backend) == [follow.task_id]


@pytest.mark.timeout(120)
def test_concurrent_joins_fire_exactly_once(backend_peers: Callable[[int], list[ResultBackend]],
                                            ) -> None:
    peers = backend_peers(4)
    store, spec = chord_of(peers[0], 200)
    errors: list[BaseException] = []

    def run(peer: ResultBackend, indexes: range) -> None:
        try:
            for i in indexes:
                # Every member is recorded by two peers, as after a redelivery.
                assert isinstance(peer, CanvasBackend)
                finish(peer, spec, i)
                finish(peer, spec, (i + 50) % 200)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p, range(n * 50, n * 50 + 50)))
               for n, p in enumerate(peers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert not errors
    info = store.group_info(spec.group_id)
    assert info is not None and info.state == CHORD_FIRED and info.done == 200
    assert due_ids(peers[0]) == [spec.callback.task_id if spec.callback else ""]


def test_redis_canvas_keys_expire_with_the_results(backend: ResultBackend) -> None:
    from yadtq.transports.redis import RedisBackend
    from yadtq.transports.redis.keys import CHORD_DONE_KEY, GROUP_KEY

    if not isinstance(backend, RedisBackend):
        pytest.skip("Redis key TTLs")
    store, spec = chord_of(backend, 2)
    finish(store, spec, 0)
    client = backend._redis
    limit = backend.settings.result_expires * 1000
    assert 0 < client.pttl(backend.key(GROUP_KEY, spec.group_id)) <= limit
    assert 0 < client.pttl(backend.key(CHORD_DONE_KEY, spec.group_id)) <= limit
