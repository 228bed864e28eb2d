"""SIGKILL soak: thousands of tasks through 3 workers while a random worker is
SIGKILLed every few seconds and replaced (Kafka + Redis)."""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import Driver, states_of, summarize, wait_finished, wait_ready
from tests.chaos.servers import KafkaCluster, RedisServer

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

TASKS = 2000
RATE = 100.0  # tasks per second: the driver sends for ~25 s
KILL_EVERY = 4.0


@pytest.mark.timeout(420)
def test_sigkill_soak(rig: RigFactory, chaos_kafka: KafkaCluster, chaos_redis: RedisServer) -> None:
    r = rig(chaos_kafka.bootstrap, chaos_redis.url)
    fleet = r.fleet
    t0 = time.time()
    first = [fleet.start() for _ in range(3)]
    wait_ready(r.app, [w.name for w in first], fleet=fleet)
    driver = Driver(lambda n: r.module.work.delay(n, 0.02).id, TASKS, RATE)
    driver.start()
    rng = random.Random(8)
    while driver.is_alive():
        time.sleep(KILL_EVERY)
        if fleet.kill_random(rng) is not None:
            fleet.start()
    driver.finish(60)
    r.app.flush(30)
    done = wait_finished(r.ledger, driver.sent, timeout=240, app=r.app)
    summary = summarize("sigkill soak", driver.sent, r.ledger.entries(), states_of(r.app, driver.sent),
                        fleet, started_at=t0, send_errors=len(driver.errors),
                        note=f"3 workers -c 4, {TASKS} x 20 ms tasks, SIGKILL every {KILL_EVERY:.0f}s")
    summary.report()
    print(summary.line())
    assert done and not summary.lost, summary.line() + "\n" + fleet.logs()
    assert summary.completed == TASKS and not driver.errors, summary.line()
    assert not summary.twice_unexplained, summary.line()
    assert summary.faults >= 4, summary.line()
