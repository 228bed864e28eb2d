"""The result backend contract (``yadtq.transports.base.ResultBackend``), run against every backend."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from typing import Callable, Optional

import pytest

from yadtq.states import FAILED, PROCESSING, QUEUED, RETRYING, REVOKED, SUCCESS
from yadtq.transports.base import (
    BUSY,
    RECENT_LIMIT,
    RUN,
    SKIP,
    Claim,
    ErrorInfo,
    Message,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    TaskTotals,
    WorkerFailure,
    WorkerInfo,
)
from yadtq.transports.base import REVOKED as DECISION_REVOKED
from yadtq.transports.sqlite.monitor import _SELECT_IN_STATE

DEADLINE = 20.0


def new_id() -> str:
    return str(uuid.uuid4())


def claim_for(task_id: str, *, instance: str = "inst-1", worker: str = "w1",
              retries: int = 0, created: float = 0.0) -> Claim:
    return Claim(task_id=task_id, name="tests.add", queue="default", retries=retries,
                 instance=instance, worker=worker, timestamp=time.time(), created=created)


def beat(backend: ResultBackend, worker: str, instance: str, *, age: float = 0.0,
         state: str = "running", resumed: bool = False) -> WorkerInfo:
    info = WorkerInfo(worker=worker, instance=instance, hostname="host", pid=42,
                      queues=("default",), concurrency=2, pool="threads", started=time.time() - 60,
                      last_heartbeat=time.time() - age, state=state, resumed=resumed)
    backend.heartbeat(info)
    return info


def get_one(backend: ResultBackend, task_id: str) -> Optional[TaskRecord]:
    return backend.get([task_id])[0]


# --------------------------------------------------------------------------- states and results


def test_record_then_get(backend: ResultBackend) -> None:
    task_id, other = new_id(), new_id()
    now = time.time()
    backend.record([StateChange(task_id, QUEUED, now, name="tests.add", queue="default")])
    record = get_one(backend, task_id)
    assert record is not None
    assert (record.task_id, record.state, record.name, record.queue) == (
        task_id, QUEUED, "tests.add", "default")
    assert record.history == ((QUEUED, now, None),)
    assert record.updated == now
    assert backend.get([other, task_id, other]) == [None, record, None]
    assert backend.get([]) == []


def test_states_reads_the_state_of_each_task(backend: ResultBackend) -> None:
    running, terminated, unknown = new_id(), new_id(), new_id()
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(running), claim_for(terminated)]) == [RUN, RUN]
    backend.record([StateChange(terminated, REVOKED, time.time())])  # revoke(terminate=True)
    assert backend.states([unknown, running, terminated, running]) == [
        None, PROCESSING, REVOKED, PROCESSING]
    assert backend.states([]) == []


def test_a_batch_of_changes_applies_in_order(backend: ResultBackend) -> None:
    task_id = new_id()
    now = time.time()
    error = ErrorInfo("builtins.ValueError", "bad input", ("bad input",), "Traceback ...")
    backend.record([
        StateChange(task_id, QUEUED, now, name="tests.add", queue="default"),
        StateChange(task_id, PROCESSING, now + 1, worker="w1"),
        StateChange(task_id, FAILED, now + 2, worker="w1", error=error, retries=1),
    ])
    record = get_one(backend, task_id)
    assert record is not None
    assert record.state == FAILED
    assert record.error == error
    assert record.retries == 1
    assert record.timestamp(PROCESSING) == now + 1


def test_ready_states_are_final(backend: ResultBackend) -> None:
    task_id = new_id()
    now = time.time()
    backend.record([StateChange(task_id, PROCESSING, now, worker="w1")])
    backend.record([StateChange(task_id, SUCCESS, now + 1, worker="w1", result=b"\x05")])
    backend.record([StateChange(task_id, FAILED, now + 2, worker="w2",
                                error=ErrorInfo("builtins.RuntimeError", "late"))])
    backend.record([StateChange(task_id, PROCESSING, now + 3, worker="w2")])
    record = get_one(backend, task_id)
    assert record is not None
    assert (record.state, record.result, record.error, record.worker) == (
        SUCCESS, b"\x05", None, "w1")
    assert [state for state, _, _ in record.history] == [PROCESSING, SUCCESS]


def test_history_grows_with_state_time_and_worker(backend: ResultBackend) -> None:
    task_id = new_id()
    now = time.time()
    backend.record([StateChange(task_id, QUEUED, now, name="tests.add")])
    backend.record([StateChange(task_id, PROCESSING, now + 0.5, worker="w1")])
    backend.record([StateChange(task_id, RETRYING, now + 1, worker="w1", retries=1, eta=now + 9)])
    backend.record([StateChange(task_id, PROCESSING, now + 9, worker="w2", retries=1)])
    backend.record([StateChange(task_id, SUCCESS, now + 10, worker="w2", result=b"ok")])
    record = get_one(backend, task_id)
    assert record is not None
    assert record.history == (
        (QUEUED, now, None),
        (PROCESSING, now + 0.5, "w1"),
        (RETRYING, now + 1, "w1"),
        (PROCESSING, now + 9, "w2"),
        (SUCCESS, now + 10, "w2"),
    )
    assert (record.retries, record.eta, record.worker, record.name) == (1, now + 9, "w2", "tests.add")
    assert record.timestamp(PROCESSING) == now + 9
    assert record.updated == now + 10


def test_a_refused_copy_fails_only_a_task_no_other_copy_can_run(backend: ResultBackend) -> None:
    """``undelivered``: a copy of a scheduled, retrying or running task that the broker
    refused (e.g. past ``message.timeout.ms``) does not fail the task."""
    unknown, queued, waiting, retrying, running = (new_id() for _ in range(5))
    now = time.time()
    backend.record([StateChange(queued, QUEUED, now),
                    StateChange(waiting, "scheduled", now, eta=now + 60),
                    StateChange(retrying, RETRYING, now, retries=1, eta=now + 60)],
                   scheduled=[scheduled(waiting, now + 60), scheduled(retrying, now + 60)])
    assert backend.claim([claim_for(running)]) == [RUN]
    error = ErrorInfo("yadtq.exceptions.BrokerUnavailable", "not delivered: _MSG_TIMED_OUT")
    backend.record([StateChange(t, FAILED, now + 1, error=error, undelivered=True)
                    for t in (unknown, queued, waiting, retrying, running)])
    states = {t: r.state if r else None for t, r in zip(
        (unknown, queued, waiting, retrying, running),
        backend.get([unknown, queued, waiting, retrying, running]))}
    assert states == {unknown: FAILED, queued: FAILED, waiting: "scheduled",
                      retrying: RETRYING, running: PROCESSING}
    # Without the flag the same change fails the task as before.
    backend.record([StateChange(waiting, FAILED, now + 2, error=error)])
    record = get_one(backend, waiting)
    assert record is not None and record.state == FAILED


# --------------------------------------------------------------------------- claims


def test_claim_runs_a_new_task(backend: ResultBackend) -> None:
    task_id = new_id()
    created = time.time() - 1
    claim = claim_for(task_id, created=created)
    assert backend.claim([claim]) == [RUN]
    record = get_one(backend, task_id)
    assert record is not None
    assert (record.state, record.worker, record.instance, record.name, record.queue) == (
        PROCESSING, "w1", "inst-1", "tests.add", "default")
    assert record.history == ((QUEUED, created, None), (PROCESSING, claim.timestamp, "w1"))


def test_claim_skips_a_ready_task(backend: ResultBackend) -> None:
    task_id = new_id()
    backend.record([StateChange(task_id, SUCCESS, time.time(), result=b"1")])
    assert backend.claim([claim_for(task_id)]) == [SKIP]
    record = get_one(backend, task_id)
    assert record is not None and record.state == SUCCESS


def test_claim_skips_a_superseded_attempt(backend: ResultBackend) -> None:
    task_id = new_id()
    backend.record([StateChange(task_id, RETRYING, time.time(), retries=2, eta=time.time())])
    assert backend.claim([claim_for(task_id, retries=1)]) == [SKIP]
    assert backend.claim([claim_for(task_id, retries=2)]) == [RUN]


def test_claim_is_busy_while_a_live_instance_runs_the_task(backend: ResultBackend) -> None:
    task_id = new_id()
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    redelivered = claim_for(task_id, instance="inst-2", worker="w2")
    # Not SKIP: the delivery is not spent while the task's outcome is not stored.
    assert backend.claim([redelivered]) == [BUSY]
    record = get_one(backend, task_id)
    assert record is not None
    assert (record.state, record.instance, record.worker) == (PROCESSING, "inst-1", "w1")
    # The holder may claim it again (a claim retried after a lost reply) ...
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    # ... and once its outcome is stored, the kept delivery is spent.
    backend.record([StateChange(task_id, SUCCESS, time.time(), worker="w1", result=b"1")])
    assert backend.claim([redelivered]) == [SKIP]


#: A short liveness window for tests that wait for a worker to be judged dead.
SHORT = {"worker_unresponsive_after": 0.6, "heartbeat_interval": 0.2}


def wait_for_decision(backend: ResultBackend, claim: Claim, wanted: str,
                      keep_alive: Callable[[], None] = lambda: None) -> float:
    """Claim every 50 ms (calling ``keep_alive`` first) until the decision is ``wanted``;
    returns when, by ``time.monotonic()``."""
    end = time.monotonic() + DEADLINE
    while True:
        keep_alive()
        decision = backend.claim([claim])[0]
        if decision == wanted:
            return time.monotonic()
        assert decision == BUSY, decision
        assert time.monotonic() < end, f"still {decision}, not {wanted}"
        time.sleep(0.05)


def test_claim_takes_over_from_an_instance_the_backend_stopped_hearing(
        backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory(**SHORT)
    task_id = new_id()
    last_beat = time.monotonic()  # before: the backend hears it at this moment or later
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    redelivered = claim_for(task_id, instance="inst-2", worker="w2")
    took_over = wait_for_decision(backend, redelivered, RUN,
                                  keep_alive=lambda: beat(backend, "w2", "inst-2"))
    assert took_over - last_beat >= SHORT["worker_unresponsive_after"]
    record = get_one(backend, task_id)
    assert record is not None
    assert (record.state, record.instance, record.worker) == (PROCESSING, "inst-2", "w2")
    assert [entry[2] for entry in record.history] == ["w1", "w2"]


def test_liveness_is_judged_on_the_backends_clock(backend: ResultBackend) -> None:
    """What a worker says its clock reads never makes it look dead (nor alive)."""
    task_id = new_id()
    for skew in (-3600.0, 30.0, -30.0):
        beat(backend, "w1", "inst-1", age=-skew)
        (info,) = [w for w in backend.workers() if w.worker == "w1"]
        assert abs(info.last_heartbeat - backend.time()) < 5.0
        assert info.silent < 5.0
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    # A claimant's own clock plays no part either.
    late = dataclasses.replace(claim_for(task_id, instance="inst-2", worker="w2"),
                               timestamp=time.time() + 3600)
    assert backend.claim([late], alive_after=time.time() + 3600) == [BUSY]


def test_a_backend_outage_does_not_make_live_workers_look_dead(
        backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory(**SHORT)
    task_id = new_id()
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    # The backend hears nobody for longer than the window (as while it is down) ...
    time.sleep(3 * SHORT["worker_unresponsive_after"])
    redelivered = claim_for(task_id, instance="inst-2", worker="w2")
    # ... so, before anyone is heard again, silence proves nothing:
    assert backend.claim([redelivered]) == [BUSY]
    # The first heartbeat of a worker that could not reach the backend ends the outage
    # and starts a new watch: inst-1 gets a full window to be heard again.
    watch_started = time.monotonic()
    beat(backend, "w2", "inst-2", resumed=True)
    silent = {w.worker: w.silent for w in backend.workers()}
    assert silent["w1"] < SHORT["worker_unresponsive_after"]
    assert backend.claim([redelivered]) == [BUSY]
    # Silent within the watch for longer than the window: now it is dead.
    took_over = wait_for_decision(backend, redelivered, RUN,
                                  keep_alive=lambda: beat(backend, "w2", "inst-2"))
    assert took_over - watch_started >= SHORT["worker_unresponsive_after"]


def test_a_worker_starting_after_the_others_died_does_not_wait_for_them(
        backend_factory: Callable[..., ResultBackend]) -> None:
    """Only a worker that could not reach the backend starts a new watch: a silence
    with the backend up (every worker died, then one started) is the dead ones' own."""
    backend = backend_factory(**SHORT)
    task_id = new_id()
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(task_id, instance="inst-1")]) == [RUN]
    time.sleep(2 * SHORT["worker_unresponsive_after"])
    beat(backend, "w2", "inst-2")
    assert backend.claim([claim_for(task_id, instance="inst-2", worker="w2")]) == [RUN]
    silent = {w.worker: w.silent for w in backend.workers()}
    assert silent["w1"] > SHORT["worker_unresponsive_after"] > silent["w2"]


def test_claim_takes_over_from_a_stopped_or_unknown_instance(backend: ResultBackend) -> None:
    stopped, unknown = new_id(), new_id()
    beat(backend, "w1", "inst-1", state="stopped")
    assert backend.claim([claim_for(stopped, instance="inst-1"),
                          claim_for(unknown, instance="inst-ghost")]) == [RUN, RUN]
    assert backend.claim([claim_for(stopped, instance="inst-2"),
                          claim_for(unknown, instance="inst-2")]) == [RUN, RUN]


def test_claim_decides_each_claim_of_a_batch(backend: ResultBackend) -> None:
    fresh, done, twice = new_id(), new_id(), new_id()
    backend.record([StateChange(done, SUCCESS, time.time())])
    beat(backend, "w1", "inst-1")
    claims = [claim_for(fresh), claim_for(done), claim_for(twice),
              claim_for(twice, instance="inst-2", worker="w2")]
    assert backend.claim(claims) == [RUN, SKIP, RUN, BUSY]
    assert backend.claim([]) == []


def test_revoke_records_a_task_that_has_not_started(backend: ResultBackend) -> None:
    queued, unknown = new_id(), new_id()
    backend.record([StateChange(queued, QUEUED, time.time(), name="tests.add")])
    revoked_at = time.time()
    backend.revoke([queued, unknown], revoked_at)
    for task_id in (queued, unknown):
        record = get_one(backend, task_id)
        assert record is not None
        assert record.state == REVOKED
        assert record.timestamp(REVOKED) == revoked_at
    # Already ready (revoked): a delivery of it never runs.
    assert backend.claim([claim_for(queued)]) == [SKIP]


def test_revoke_does_not_discard_a_running_tasks_outcome(backend: ResultBackend) -> None:
    task_id = new_id()
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(task_id)]) == [RUN]
    backend.revoke([task_id], time.time())
    record = get_one(backend, task_id)
    assert record is not None and record.state == PROCESSING  # it runs to its end
    # A duplicate delivery arriving after the revoke neither runs nor revokes it.
    redelivered = claim_for(task_id, instance="inst-2", worker="w2")
    assert backend.claim([redelivered]) == [BUSY]
    record = get_one(backend, task_id)
    assert record is not None and record.state == PROCESSING
    backend.record([StateChange(task_id, SUCCESS, time.time(), worker="w1", result=b"42")])
    assert backend.claim([redelivered]) == [SKIP]
    record = get_one(backend, task_id)
    assert record is not None and (record.state, record.result) == (SUCCESS, b"42")


def test_claim_after_revoke_of_a_task_whose_holder_stopped_is_revoked(backend: ResultBackend) -> None:
    task_id = new_id()
    beat(backend, "w1", "inst-1")
    assert backend.claim([claim_for(task_id)]) == [RUN]
    backend.revoke([task_id], time.time())
    beat(backend, "w1", "inst-1", state="stopped")  # it will never record an outcome
    redelivered = claim_for(task_id, instance="inst-2", worker="w2")
    assert backend.claim([redelivered]) == [DECISION_REVOKED]
    record = get_one(backend, task_id)
    assert record is not None and record.state == REVOKED


# --------------------------------------------------------------------------- wait


def test_wait_returns_at_once_for_a_ready_task(backend: ResultBackend) -> None:
    task_id = new_id()
    backend.record([StateChange(task_id, SUCCESS, time.time(), result=b"r")])
    started = time.monotonic()
    record = backend.wait(task_id, 10.0)
    assert record is not None and record.result == b"r"
    assert time.monotonic() - started < 2.0


def test_wait_is_woken_when_another_thread_records_success(
        backend_peers: Callable[[int], list[ResultBackend]]) -> None:
    waiter, writer = backend_peers(2)
    task_id = new_id()
    waiter.record([StateChange(task_id, PROCESSING, time.time(), worker="w1")])
    timer = threading.Timer(0.2, writer.record,
                            args=([StateChange(task_id, SUCCESS, time.time(), result=b"5")],))
    started = time.monotonic()
    timer.start()
    try:
        record = waiter.wait(task_id, 15.0)
    finally:
        timer.join(DEADLINE)
    elapsed = time.monotonic() - started
    assert record is not None
    assert (record.state, record.result) == (SUCCESS, b"5")
    assert elapsed < 3.0  # woken, not timed out (nor found by a slow fallback re-read)


def test_wait_is_woken_by_a_revoke(backend: ResultBackend) -> None:
    task_id = new_id()
    backend.record([StateChange(task_id, QUEUED, time.time())])
    timer = threading.Timer(0.2, backend.revoke, args=([task_id], time.time()))
    started = time.monotonic()
    timer.start()
    try:
        record = backend.wait(task_id, 15.0)
    finally:
        timer.join(DEADLINE)
    assert record is not None and record.state == REVOKED
    assert time.monotonic() - started < 3.0


def test_wait_returns_none_on_timeout(backend: ResultBackend) -> None:
    task_id = new_id()
    backend.record([StateChange(task_id, PROCESSING, time.time(), worker="w1")])
    started = time.monotonic()
    assert backend.wait(task_id, 0.3) is None
    assert backend.wait(new_id(), 0.0) is None
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 3.0


_WRITER_PROCESS = """
import sys, time
from yadtq.settings import load_settings
from yadtq.transports.base import StateChange, create_backend
url, task_id = sys.argv[1], sys.argv[2]
backend = create_backend(url, load_settings(broker="memory://", backend=url, environ={}))
backend.get([task_id])
print("ready", flush=True)
sys.stdin.readline()
backend.record([StateChange(task_id, "success", time.time(), worker="other", result=b"42")])
print(time.time(), flush=True)
backend.close()
"""


def test_wait_is_woken_by_a_write_from_another_process(
        backend_kind: str, backend: ResultBackend, backend_url: str,
        python_process: Callable[..., subprocess.Popen[str]]) -> None:
    if backend_kind != "sqlite":
        pytest.skip("other processes share a server-less backend only on SQLite")
    task_id = new_id()
    backend.record([StateChange(task_id, PROCESSING, time.time(), worker="other")])
    writer = python_process(_WRITER_PROCESS, backend_url, task_id)
    assert writer.stdout is not None and writer.stdin is not None
    assert writer.stdout.readline().strip() == "ready", writer.communicate()[1]

    def go() -> None:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()

    timer = threading.Timer(0.3, go)
    started = time.monotonic()
    timer.start()
    try:
        record = backend.wait(task_id, 15.0)
    finally:
        timer.join(DEADLINE)
    woke = time.time()
    assert record is not None
    assert (record.state, record.result, record.worker) == (SUCCESS, b"42", "other")
    out, err = writer.communicate(timeout=DEADLINE)
    assert writer.returncode == 0, err
    written = float(out.strip().splitlines()[-1])
    # The fallback re-read is 30 s apart here: only a notification wakes this fast.
    assert woke - written < 2.0
    assert time.monotonic() - started < 5.0
    notify_dir = backend.notify_directory  # type: ignore[attr-defined]
    kept = [n for n in os.listdir(notify_dir) if n.endswith(".sock")]
    assert kept and all(n.startswith(f"{os.getpid()}-") for n in kept)  # this thread's, for its next wait
    backend.close()
    left = os.listdir(notify_dir) if os.path.isdir(notify_dir) else []
    assert not [n for n in left if n.endswith(".sock")]  # closing the backend cleaned up


def test_forget(backend: ResultBackend) -> None:
    task_id, kept = new_id(), new_id()
    backend.record([StateChange(task_id, SUCCESS, time.time(), result=b"x"),
                    StateChange(kept, SUCCESS, time.time(), result=b"y")])
    backend.forget([task_id, new_id()])
    assert get_one(backend, task_id) is None
    kept_record = get_one(backend, kept)
    assert kept_record is not None and kept_record.result == b"y"


def test_records_expire_after_result_expires(
        backend_factory: Callable[..., ResultBackend]) -> None:
    backend = backend_factory(result_expires=1.0)
    task_id = new_id()
    backend.record([StateChange(task_id, SUCCESS, time.time(), result=b"x")])
    assert get_one(backend, task_id) is not None
    end = time.monotonic() + DEADLINE
    while get_one(backend, task_id) is not None and time.monotonic() < end:
        time.sleep(0.05)
    assert get_one(backend, task_id) is None
    assert backend.wait(task_id, 0.1) is None


# --------------------------------------------------------------------------- schedule


def scheduled(task_id: str, due: float, queue: str = "default") -> ScheduledMessage:
    body = f"body-{task_id}".encode()
    return ScheduledMessage(task_id, due, Message(queue, body, key=task_id.encode(),
                                                  headers={"yadtq-task": b"tests.add"}))


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


# --------------------------------------------------------------------------- dedupe


def test_claim_dedupe_returns_the_earlier_task_until_it_fails(backend: ResultBackend) -> None:
    key = f"dedupe-{new_id()}"
    first, second, third, fourth = new_id(), new_id(), new_id(), new_id()
    assert backend.claim_dedupe(key, first, 60.0) == first
    assert backend.claim_dedupe(key, second, 60.0) == first  # first not recorded yet: queued
    backend.record([StateChange(first, SUCCESS, time.time(), result=b"1")])
    assert backend.claim_dedupe(key, second, 60.0) == first  # result caching
    other_key = f"dedupe-{new_id()}"
    assert backend.claim_dedupe(other_key, third, 60.0) == third
    backend.record([StateChange(third, FAILED, time.time(),
                                error=ErrorInfo("builtins.ValueError", "x"))])
    assert backend.claim_dedupe(other_key, fourth, 60.0) == fourth
    assert backend.claim_dedupe(other_key, new_id(), 60.0) == fourth


def test_release_dedupe_drops_the_key_only_for_its_own_task(backend: ResultBackend) -> None:
    key = f"dedupe-{new_id()}"
    never_sent, other, retried = new_id(), new_id(), new_id()
    assert backend.claim_dedupe(key, never_sent, 60.0) == never_sent
    backend.release_dedupe(key, other)  # not the holder: kept
    assert backend.claim_dedupe(key, other, 60.0) == never_sent
    backend.release_dedupe(key, never_sent)
    assert backend.claim_dedupe(key, retried, 60.0) == retried
    backend.release_dedupe(f"dedupe-{new_id()}", retried)  # an unknown key is no error


def test_claim_dedupe_key_expires_after_its_ttl(backend: ResultBackend) -> None:
    key = f"dedupe-{new_id()}"
    first, second = new_id(), new_id()
    assert backend.claim_dedupe(key, first, 0.5) == first
    end = time.monotonic() + DEADLINE
    winner = first
    while winner == first and time.monotonic() < end:
        time.sleep(0.05)
        winner = backend.claim_dedupe(key, second, 60.0)
    assert winner == second


def test_claim_dedupe_is_atomic_across_threads(
        backend_peers: Callable[[int], list[ResultBackend]]) -> None:
    backends = backend_peers(2)
    key = f"dedupe-{new_id()}"
    winners: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def submit(backend: ResultBackend) -> None:
        start.wait()
        mine = [backend.claim_dedupe(key, new_id(), 60.0) for _ in range(250)]
        with lock:
            winners.extend(mine)

    threads = [threading.Thread(target=submit, args=(backends[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 40)
    assert len(winners) == 1000
    assert len(set(winners)) == 1


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
