"""The result backend contract (``yadtq.transports.base.ResultBackend``), run against every
backend: states and results, claims, waiting. The rest is in ``test_backend_*_contract.py``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from typing import Callable

import pytest

from yadtq.states import FAILED, PROCESSING, QUEUED, RETRYING, REVOKED, SUCCESS
from yadtq.transports.base import (
    BUSY,
    RUN,
    SKIP,
    Claim,
    ErrorInfo,
    ResultBackend,
    StateChange,
)
from yadtq.transports.base import REVOKED as DECISION_REVOKED

from .backend_support import DEADLINE, SHORT, beat, claim_for, get_one, new_id, scheduled

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
