"""The result backend contract, run against every backend: the schedule of delayed messages."""

from __future__ import annotations

import threading
import time
from typing import Callable

from yadtq.states import RETRYING
from yadtq.transports.base import (
    ResultBackend,
    ScheduledMessage,
    StateChange,
)

from .backend_support import DEADLINE, get_one, new_id, scheduled

# --------------------------------------------------------------------------- schedule


def test_schedule_hands_out_only_due_messages(backend: ResultBackend) -> None:
    now = time.time()
    soon, later = scheduled(new_id(), now - 1), scheduled(new_id(), now + 100)
    backend.record([StateChange(soon.task_id, RETRYING, now, retries=1, eta=soon.due)],
                   scheduled=[soon, later])
    record = get_one(backend, soon.task_id)
    assert record is not None and record.state == RETRYING  # stored in the same step
    taken = backend.claim_due(now, 10, lease=30.0)
    assert [e.task_id for e in taken] == [soon.task_id]
    entry = taken[0]
    assert entry.due == soon.due
    assert (entry.message.queue, entry.message.body, entry.message.key) == (
        soon.message.queue, soon.message.body, soon.message.key)
    assert dict(entry.message.headers) == {"yadtq-task": b"tests.add"}
    assert backend.claim_due(now, 10, lease=30.0) == []  # leased
    assert backend.claim_due(now, 0, lease=30.0) == []


def test_schedule_is_due_and_leased_on_the_backends_clock(
        backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory()
    now = backend.time()
    due, later = scheduled(new_id(), now - 1), scheduled(new_id(), now + 3600)
    backend.record([], scheduled=[due, later])
    assert [e.task_id for e in backend.claim_due(None, 10, lease=0.3)] == [due.task_id]
    assert backend.claim_due(None, 10, lease=0.3) == []  # leased, on the backend's clock
    end = time.monotonic() + DEADLINE
    again: list[ScheduledMessage] = []
    while not again:
        assert time.monotonic() < end
        time.sleep(0.05)
        again = backend.claim_due(None, 10, lease=30.0)
    assert [e.task_id for e in again] == [due.task_id]


def test_schedule_lease_runs_out_and_release_removes(backend: ResultBackend) -> None:
    now = time.time()
    first, second = scheduled(new_id(), now - 2), scheduled(new_id(), now + 50)
    backend.record([], scheduled=[first, second])
    assert [e.task_id for e in backend.claim_due(now, 10, lease=30.0)] == [first.task_id]
    # Its claimant died: after the lease it is handed out again, not lost.
    again = backend.claim_due(now + 31, 10, lease=30.0)
    assert [e.task_id for e in again] == [first.task_id]
    backend.release_due(again)
    taken = backend.claim_due(now + 100, 10, lease=30.0)
    assert [e.task_id for e in taken] == [second.task_id]
    backend.release_due(taken)
    assert backend.claim_due(now + 1000, 10, lease=30.0) == []


def test_schedule_hands_each_due_message_to_one_of_two_concurrent_claimers(
        backend_peers: Callable[[int], list[ResultBackend]]) -> None:
    first, second = backend_peers(2)
    now = time.time()
    entries = [scheduled(new_id(), now - 10 + i * 0.01) for i in range(200)]
    first.record([], scheduled=entries)
    results: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def claimer(backend: ResultBackend, into: list[str]) -> None:
        start.wait()
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            taken = backend.claim_due(now, 7, lease=60.0)
            if not taken:
                return
            into.extend(e.task_id for e in taken)

    threads = [threading.Thread(target=claimer, args=(b, r))
               for b, r in ((first, results[0]), (second, results[1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 5)
    claimed = results[0] + results[1]
    assert sorted(claimed) == sorted(e.task_id for e in entries)
    assert len(set(claimed)) == len(claimed)


def test_next_due(backend: ResultBackend) -> None:
    assert backend.next_due() is None
    now = time.time()
    early, late = scheduled(new_id(), now + 5), scheduled(new_id(), now + 50)
    backend.record([], scheduled=[late, early])
    assert backend.next_due() == early.due
    backend.release_due(backend.claim_due(now + 10, 10, lease=30.0))
    assert backend.next_due() == late.due
