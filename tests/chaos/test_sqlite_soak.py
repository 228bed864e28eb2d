"""The SIGKILL soak on the embedded SQLite transport: 3 worker processes on one
database file, a random one SIGKILLed every few seconds and replaced."""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import Driver, states_of, summarize, wait_finished, wait_ready

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TASKS = 1500
RATE = 100.0
KILL_EVERY = 3.0
#: Leases and liveness shortened from the defaults (300 s / 15 s) so the soak fits CI.
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "5", "visibility_timeout": "5"}


@pytest.mark.timeout(300)
def test_sqlite_sigkill_soak(rig: RigFactory, sqlite_url: str) -> None:
    r = rig("", sqlite_url, broker=sqlite_url, **FAST)
    fleet = r.fleet
    t0 = time.time()
    first = [fleet.start() for _ in range(3)]
    wait_ready(r.app, [w.name for w in first], fleet=fleet)
    driver = Driver(lambda n: r.module.work.delay(n, 0.02).id, TASKS, RATE)
    driver.start()
    rng = random.Random(3)
    while driver.is_alive():
        time.sleep(KILL_EVERY)
        if fleet.kill_random(rng) is not None:
            fleet.start()
    driver.finish(60)
    done = wait_finished(r.ledger, driver.sent, timeout=180, app=r.app)
    summary = summarize("sqlite sigkill soak", driver.sent, r.ledger.entries(), states_of(r.app, driver.sent),
                        fleet, started_at=t0, send_errors=len(driver.errors),
                        note=f"3 workers on one file, {TASKS} x 20 ms tasks, "
                             f"SIGKILL every {KILL_EVERY:.0f}s, "
                             "visibility_timeout=5")
    summary.report()
    print(summary.line())
    assert done and not summary.lost, summary.line() + "\n" + fleet.logs()
    assert summary.completed == TASKS and not driver.errors, (summary.line(), driver.errors[:3])
    assert not summary.twice_unexplained, summary.line()
    assert summary.faults >= 3, summary.line()
