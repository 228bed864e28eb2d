"""The result backend contract, run against every backend: worker reports, liveness and failures."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from yadtq.transports.base import (
    RUN,
    ResultBackend,
    WorkerFailure,
    WorkerInfo,
)

from .backend_support import DEADLINE, SHORT, beat, claim_for, new_id

# --------------------------------------------------------------------------- workers


def test_heartbeat_keeps_each_workers_latest_report(backend: ResultBackend) -> None:
    assert backend.workers() == []
    beat(backend, "w1", "inst-1")
    latest = WorkerInfo(worker="w1", instance="inst-1", hostname="host", pid=42,
                        queues=("default", "high"), concurrency=4, pool="processes",
                        started=time.time() - 60, last_heartbeat=time.time(), tasks_done=10,
                        tasks_failed=2, active=3, extra={"rss": 1234})
    before = backend.time()
    backend.heartbeat(latest)
    other = beat(backend, "w2", "inst-9")
    after = backend.time()
    by_name = {w.worker: w for w in backend.workers()}
    assert set(by_name) == {"w1", "w2"}
    for sent in (latest, other):
        stored = by_name[sent.worker]
        # Stamped on receipt with the backend's clock; all else as sent.
        assert before - 0.01 <= stored.last_heartbeat <= after + 0.01
        assert 0.0 <= stored.silent < 5.0
        assert dataclasses.replace(stored, last_heartbeat=sent.last_heartbeat, silent=0.0) == sent


def test_heartbeat_prunes_workers_not_heard_for_the_retention_period(
        backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory(worker_retention=0.5)
    beat(backend, "gone", "inst-gone", state="stopped")
    beat(backend, "silent", "inst-silent")
    end = time.monotonic() + DEADLINE
    while {w.worker for w in backend.workers()} != {"kept"}:
        assert time.monotonic() < end, [w.worker for w in backend.workers()]
        time.sleep(0.1)
        beat(backend, "kept", "inst-kept")
    # A pruned instance is not alive any more: its task may run elsewhere.
    task_id = new_id()
    assert backend.claim([claim_for(task_id, instance="inst-silent")]) == [RUN]
    assert backend.claim([claim_for(task_id, instance="inst-kept", worker="kept")]) == [RUN]


def test_silent_workers_are_the_running_ones_not_heard_for_long(
        backend_factory: Callable[..., ResultBackend]) -> None:
    """What every heartbeat looks for: running workers silent past the bound, as
    ``workers()`` reports them; never a worker that stopped cleanly, nor one heard since."""
    backend = backend_factory(**SHORT)
    after = 0.3
    beat(backend, "stopped", "inst-stopped", state="stopped")
    beat(backend, "dead", "inst-dead")
    assert backend.silent_workers(after) == []  # all just heard
    end = time.monotonic() + DEADLINE
    while not (silent := backend.silent_workers(after)):
        assert time.monotonic() < end, "no worker ever became silent"
        beat(backend, "live", "inst-live")
        time.sleep(0.05)
    assert [(w.worker, w.instance) for w in silent] == [("dead", "inst-dead")]
    listed = {w.worker: w for w in backend.workers()}
    assert listed["stopped"].silent > after  # as silent, but stopped: not looked for
    assert silent[0].silent > after
    assert dataclasses.replace(silent[0], silent=0.0) == dataclasses.replace(listed["dead"], silent=0.0)
    beat(backend, "dead", "inst-dead")  # heard again
    beat(backend, "live", "inst-live")
    assert backend.silent_workers(after) == []
    beat(backend, "dead", "inst-dead", state="stopped")  # then stopped cleanly
    time.sleep(after + 0.1)
    beat(backend, "live", "inst-live")
    assert backend.silent_workers(after) == []


def test_failures_newest_first_one_per_instance(backend: ResultBackend) -> None:
    now = time.time()
    first = WorkerFailure("w1", "inst-1", now - 30, now)
    second = WorkerFailure("w2", "inst-2", now - 20, now + 1)
    backend.record_failure(first)
    backend.record_failure(second)
    backend.record_failure(WorkerFailure("w1", "inst-1", now - 10, now + 2))  # seen already
    assert backend.failures() == [second, first]
    assert backend.failures(limit=1) == [second]


def test_failure_history_is_capped(backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory(failure_history=3)
    now = time.time()
    failures = [WorkerFailure(f"w{i}", f"inst-{i}", now - 20, now + i) for i in range(5)]
    for failure in failures:
        backend.record_failure(failure)
    assert backend.failures() == failures[:1:-1]
