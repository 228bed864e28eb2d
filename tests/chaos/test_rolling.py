"""Rolling deploy: tasks longer than the revocation drain run on worker A; B joins
(partitions move while A still runs them); then A is stopped, once with SIGTERM
(a short grace period that the tasks outlast) and once with SIGKILL. Every task
completes."""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import states_of, summarize, wait_finished, wait_ready
from tests.chaos.servers import KafkaCluster, RedisServer

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

#: Tasks, all running on A at once (A runs ``-c TASKS``). Spread over the queue's 8
#: partitions by the hash of their ids, they must cover the partitions that move to B:
#: with 8 tasks, all of them sat on the partitions A kept about once in 40 runs (B then
#: had nothing to park and the test timed out); with 24 that is about 1 in 80,000.
TASKS = 24
#: The first run of each task (on A): longer than A's drain and than what the test waits
#: for before stopping A. A run again on B is quick (``long_first``).
TASK_SECONDS = 20.0
#: A's revocation drain ends (gives up on its tasks), in A's log.
REVOKED = re.compile(r"partitions \[[\d, ]+\] revoked(; \d+ unfinished|\s*$)", re.MULTILINE)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_rolling_deploy(rig: RigFactory, chaos_kafka: KafkaCluster, chaos_redis: RedisServer,
                        how: str) -> None:
    r = rig(chaos_kafka.bootstrap, chaos_redis.url, worker_args=("-c", str(TASKS)))
    fleet = r.fleet
    t0 = time.time()
    # A stops with a 1 s grace period, shorter than what is left of its tasks.
    a = fleet.start("A", env=dict(r.env, YADTQ_SHUTDOWN_TIMEOUT="1"))
    wait_ready(r.app, ["A"], fleet=fleet)
    sent = [r.module.long_first.delay(n, TASK_SECONDS).id for n in range(TASKS)]
    r.app.flush(30)
    deadline = time.monotonic() + 60
    while len(r.ledger.started()) < TASKS:
        assert time.monotonic() < deadline, "A did not start every task"
        time.sleep(0.2)
    b = fleet.start("B")
    wait_ready(r.app, ["B"], fleet=fleet)
    # Partitions move to B while A still runs their tasks: A's drain (1 s: it is bounded by
    # shutdown_timeout) gives up, and B parks the tasks as running on a live worker.
    deadline = time.monotonic() + 90
    while not (REVOKED.search(a.logfile.read_text(errors="replace"))
               and "runs on another live worker" in b.logfile.read_text(errors="replace")):
        assert time.monotonic() < deadline, "partitions did not move to B\n" + fleet.logs()
        assert a.running() and b.running(), fleet.logs()
        time.sleep(0.2)
    unfinished = set(sent) - r.ledger.finished()
    assert unfinished, "the tasks finished before A was stopped: the scenario did not happen"
    if how == "SIGTERM":
        fleet.stop(a)
    else:
        fleet.signal(a, signal.SIGKILL)
    done = wait_finished(r.ledger, sent, timeout=90, app=r.app)

    summary = summarize(f"rolling deploy ({how})", sent, r.ledger.entries(), states_of(r.app, sent), fleet,
                        started_at=t0, note=f"{TASKS} x {TASK_SECONDS:.0f}s tasks on A, B joins, A {how}")
    summary.report()
    print(summary.line())
    assert done and not summary.lost, summary.line() + "\n" + fleet.logs()
    assert not summary.twice_unexplained, summary.line()
    assert b.running(), "B exited"
