"""The result backend contract, run against every backend: the monitoring snapshot."""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

import pytest

from yadtq.states import FAILED, RETRYING, SUCCESS
from yadtq.transports.base import (
    RECENT_LIMIT,
    RUN,
    Claim,
    ErrorInfo,
    ResultBackend,
    StateChange,
    TaskTotals,
)
from yadtq.transports.base import REVOKED as DECISION_REVOKED
from yadtq.transports.sqlite.monitor import _SELECT_IN_STATE

from .backend_support import beat, claim_for, new_id, scheduled

# --------------------------------------------------------------------------- monitoring


def test_snapshot_of_an_empty_backend(backend: ResultBackend) -> None:
    snap = backend.snapshot()
    assert (snap.processing, snap.retrying, snap.scheduled) == (0, 0, 0)
    assert snap.totals == TaskTotals()
    assert snap.processing_tasks == snap.retrying_tasks == snap.scheduled_tasks == ()
    assert snap.recent_successes == snap.recent_failures == ()


def test_snapshot_lists_tasks_in_progress_and_finished_ones(backend: ResultBackend) -> None:
    first, second, third = new_id(), new_id(), new_id()
    claims = [claim_for(first), claim_for(second, worker="w2", instance="inst-2"), claim_for(third)]
    assert backend.claim(claims) == [RUN, RUN, RUN]
    snap = backend.snapshot()
    assert snap.processing == 3
    listed = {t.task_id: t for t in snap.processing_tasks}
    assert set(listed) == {first, second, third}
    assert (listed[second].name, listed[second].worker, listed[second].queue) == (
        "tests.add", "w2", "default")
    assert listed[second].timestamp == pytest.approx(claims[1].timestamp)

    finished = time.time() + 1
    error = ErrorInfo("builtins.ZeroDivisionError", "division by zero", ("division by zero",))
    backend.record([StateChange(first, SUCCESS, finished, worker="w1", result=b"\x05")])
    backend.record([StateChange(second, FAILED, finished + 1, worker="w2", error=error)])
    snap = backend.snapshot()
    assert snap.processing == 1
    assert [t.task_id for t in snap.processing_tasks] == [third]
    assert (snap.totals.succeeded, snap.totals.failed) == (1, 1)
    (success,) = snap.recent_successes
    assert (success.task_id, success.name, success.worker, success.queue) == (
        first, "tests.add", "w1", "default")
    assert success.timestamp == pytest.approx(finished)
    assert success.runtime == pytest.approx(finished - claims[0].timestamp)
    assert success.error_type is None
    (failure,) = snap.recent_failures
    assert (failure.task_id, failure.worker, failure.error_type, failure.error_message) == (
        second, "w2", "builtins.ZeroDivisionError", "division by zero")
    assert failure.runtime == pytest.approx(finished + 1 - claims[1].timestamp)


def test_snapshot_counts_retries_and_the_schedule(backend: ResultBackend) -> None:
    task_id, later = new_id(), new_id()
    now = time.time()
    assert backend.claim([claim_for(task_id)]) == [RUN]
    retry = scheduled(task_id, now + 30)
    backend.record([StateChange(task_id, RETRYING, now + 1, worker="w1", retries=1, eta=retry.due)],
                   scheduled=[retry])
    backend.record([StateChange(later, "scheduled", now, name="tests.add", queue="default",
                                eta=now + 60)], scheduled=[scheduled(later, now + 60, queue="other")])
    snap = backend.snapshot()
    assert (snap.processing, snap.retrying, snap.scheduled) == (0, 1, 2)
    assert snap.totals.retried == 1
    (waiting,) = snap.retrying_tasks
    assert (waiting.task_id, waiting.worker) == (task_id, "w1")
    assert waiting.timestamp == pytest.approx(now + 1)
    assert [(t.task_id, t.name, t.queue) for t in snap.scheduled_tasks] == [
        (task_id, "tests.add", "default"), (later, "tests.add", "other")]
    assert [t.timestamp for t in snap.scheduled_tasks] == [retry.due, now + 60]
    # The retry is published and claimed: no longer retrying, processing again.
    backend.release_due(backend.claim_due(now + 31, 10, lease=30.0))
    assert backend.claim([claim_for(task_id, retries=1)]) == [RUN]
    snap = backend.snapshot()
    assert (snap.processing, snap.retrying, snap.scheduled) == (1, 0, 1)
    assert snap.retrying_tasks == ()


def test_snapshot_counts_revoked_and_dead_lettered(backend: ResultBackend) -> None:
    queued, running, done = new_id(), new_id(), new_id()
    beat(backend, "w1", "inst-1")
    backend.revoke([queued], time.time())
    assert backend.claim([claim_for(running)]) == [RUN]
    backend.revoke([running], time.time())  # running: it finishes, no revoked state yet
    assert backend.snapshot().totals.revoked == 1
    beat(backend, "w1", "inst-1", state="stopped")  # its holder left without an outcome
    redelivered = claim_for(running, instance="inst-2", worker="w2")
    assert backend.claim([redelivered]) == [DECISION_REVOKED]
    snap = backend.snapshot()
    assert (snap.totals.revoked, snap.processing) == (2, 0)

    error = ErrorInfo("yadtq.exceptions.NotRegistered", "task 'x' is not registered")
    backend.record([StateChange(new_id(), FAILED, time.time(), error=error, dead_lettered=True)])
    backend.record([StateChange(done, SUCCESS, time.time(), result=b"1")])
    # A dead letter of a finished task is counted, though its state does not change.
    backend.record([StateChange(done, FAILED, time.time(), error=error, dead_lettered=True)])
    totals = backend.snapshot().totals
    assert (totals.dead_lettered, totals.failed, totals.succeeded) == (2, 1, 1)


def test_snapshot_lists_are_limited_and_ordered(backend: ResultBackend) -> None:
    base = time.time() - 100
    ids = [new_id() for _ in range(RECENT_LIMIT + 5)]
    claims = [Claim(t, "tests.add", "default", 0, "inst-1", "w1", base + i) for i, t in enumerate(ids)]
    assert backend.claim(claims) == [RUN] * len(ids)
    snap = backend.snapshot(limit=3)
    assert snap.processing == len(ids)
    assert [t.task_id for t in snap.processing_tasks] == ids[:3]  # longest running first
    backend.record([StateChange(t, SUCCESS, base + 50 + i, worker="w1") for i, t in enumerate(ids)])
    snap = backend.snapshot()
    assert snap.processing == 0 and snap.totals.succeeded == len(ids)
    assert [t.task_id for t in snap.recent_successes] == ids[::-1][:RECENT_LIMIT]  # newest first
    assert [t.task_id for t in backend.snapshot(limit=2).recent_successes] == ids[::-1][:2]
    assert backend.snapshot(limit=0).recent_successes == ()


def test_snapshot_forgets_forgotten_tasks(backend: ResultBackend) -> None:
    task_id = new_id()
    assert backend.claim([claim_for(task_id)]) == [RUN]
    backend.forget([task_id])
    snap = backend.snapshot()
    assert (snap.processing, snap.processing_tasks) == (0, ())


def test_snapshot_is_shared_by_every_client_of_the_store(
        backend_peers: Callable[[int], list[ResultBackend]]) -> None:
    writer, monitor = backend_peers(2)
    task_id = new_id()
    assert writer.claim([claim_for(task_id)]) == [RUN]
    writer.record([StateChange(task_id, SUCCESS, time.time(), worker="w1")])
    snap = monitor.snapshot()
    assert snap.totals.succeeded == 1
    assert [t.task_id for t in snap.recent_successes] == [task_id]


def test_sqlite_snapshot_reads_through_the_state_index(backend_kind: str, backend: ResultBackend) -> None:
    if backend_kind != "sqlite":
        pytest.skip("query plans are SQLite's")
    backend.snapshot()  # creates the schema
    conn = sqlite3.connect(backend.path)  # type: ignore[attr-defined]
    try:
        for order in ("ASC", "DESC"):
            plan = " ".join(row[-1] for row in conn.execute(
                "EXPLAIN QUERY PLAN " + _SELECT_IN_STATE.format(order=order), ("success", 0.0, 50)))
            assert "yadtq_tasks_state" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        conn.close()
