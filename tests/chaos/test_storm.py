"""Rebalance storm: workers joining and leaving every second while 5,000 tasks flow.
Nothing is lost."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import Driver, locate_in_kafka, states_of, summarize, wait_finished, wait_ready
from tests.chaos.servers import KafkaCluster, RedisServer

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

TASKS = 5000
RATE = 200.0  # the driver sends for 25 s: about 25 joins and leaves
MIN_WORKERS, MAX_WORKERS = 2, 5


@pytest.mark.timeout(420)
def test_rebalance_storm(rig: RigFactory, chaos_kafka: KafkaCluster, chaos_redis: RedisServer) -> None:
    r = rig(chaos_kafka.bootstrap, chaos_redis.url)
    fleet = r.fleet
    t0 = time.time()
    first = [fleet.start() for _ in range(3)]
    wait_ready(r.app, [w.name for w in first], fleet=fleet)
    driver = Driver(lambda n: r.module.work.delay(n, 0.01).id, TASKS, RATE)
    driver.start()
    rng = random.Random(5000)
    changes = 0
    while driver.is_alive():
        time.sleep(1.0)
        live = fleet.live()
        if len(live) <= MIN_WORKERS or (len(live) < MAX_WORKERS and rng.random() < 0.5):
            fleet.start()
        else:
            fleet.signal(rng.choice(live), signal.SIGTERM)  # leaves gracefully, not waited for
        changes += 1
    driver.finish(60)
    r.app.flush(30)
    if len(fleet.live()) < MIN_WORKERS:
        fleet.start()
    done = wait_finished(r.ledger, driver.sent, timeout=240, app=r.app)
    summary = summarize("rebalance storm", driver.sent, r.ledger.entries(), states_of(r.app, driver.sent),
                        fleet, started_at=t0, send_errors=len(driver.errors),
                        note=f"{changes} joins/leaves (SIGTERM), one a second, {MIN_WORKERS}-{MAX_WORKERS} "
                             f"workers, {TASKS} x 10 ms tasks")
    summary.report()
    print(summary.line())
    where = locate_in_kafka(chaos_kafka.bootstrap, r.app, r.queue, summary.lost) if summary.lost else ""
    assert done and not summary.lost, summary.line() + "\n" + where + "\n" + fleet.logs()
    assert not driver.errors, driver.errors[:3]
    assert not summary.twice_unexplained, summary.line()
