"""The periodic schedule steps (``PeriodicStore``) on every backend: save is idempotent,
a due tick is claimed once and lands in the schedule in the same step, pause, remove."""

from __future__ import annotations

import threading
import time

import pytest

from yadtq.transports.base import Message, ResultBackend, ScheduledMessage
from yadtq.transports.periodic_store import periodic_store

pytestmark = pytest.mark.timeout(60)


def tick(task_id: str, due: float) -> ScheduledMessage:
    return ScheduledMessage(task_id, due, Message("q", b"body-" + task_id.encode()))


def test_save_is_idempotent_and_a_changed_spec_replaces(backend: ResultBackend) -> None:
    store = periodic_store(backend)
    assert store.save_periodic("a", b"spec1", 100.0)
    assert not store.save_periodic("a", b"spec1", 200.0)  # same spec: untouched
    (entry,) = store.periodic_entries()
    assert (entry.name, entry.spec, entry.next_run, entry.paused, entry.last_run) == \
        ("a", b"spec1", 100.0, False, None)
    assert store.pause_periodic("a", True)
    assert store.save_periodic("a", b"spec2", 300.0)  # changed: spec and next run, still paused
    (entry,) = store.periodic_entries()
    assert (entry.spec, entry.next_run, entry.paused) == (b"spec2", 300.0, True)


def test_due_tick_is_claimed_once_with_its_message(backend: ResultBackend) -> None:
    store = periodic_store(backend)
    now = backend.time()
    due_at = now - 5
    store.save_periodic("due", b"s", due_at)
    store.save_periodic("later", b"s", now + 3600)
    assert [e.name for e in store.due_periodic(None)] == ["due"]
    wins: list[bool] = []

    def claim() -> None:
        wins.append(store.advance_periodic("due", due_at, due_at + 60, tick("t1", due_at)))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert wins.count(True) == 1
    claimed = backend.claim_due(None, 10, 30)
    assert [(m.task_id, m.due, m.message.body) for m in claimed] == [("t1", due_at, b"body-t1")]
    entry = {e.name: e for e in store.periodic_entries()}["due"]
    assert (entry.next_run, entry.last_run, entry.last_task_id) == (due_at + 60, due_at, "t1")
    assert store.due_periodic(None) == []
    # A tick not yet due on the backend's clock is refused, even with the right next_run.
    assert not store.advance_periodic("later", now + 3600, now + 7200, tick("t2", now + 3600))
    # A skipped tick (catch_up="none") moves next_run on without a message.
    store.save_periodic("skip", b"s", due_at)
    assert store.advance_periodic("skip", due_at, now + 60, None)
    assert {e.name: e for e in store.periodic_entries()}["skip"].last_run is None


def test_pause_resume_remove(backend: ResultBackend) -> None:
    store = periodic_store(backend)
    past = time.time() - 10
    store.save_periodic("p", b"s", past)
    assert store.pause_periodic("p", True)
    assert store.due_periodic(None) == []
    assert not store.advance_periodic("p", past, past + 60, tick("t", past))
    assert store.pause_periodic("p", False, past + 1)
    (entry,) = store.due_periodic(None)
    assert (entry.next_run, entry.paused) == (past + 1, False)
    assert store.remove_periodic("p")
    assert not store.remove_periodic("p")
    assert not store.pause_periodic("p", True)
    assert store.periodic_entries() == [] and store.due_periodic(None) == []
