"""A three-broker Kafka cluster on loopback (replication factor 3,
``min.insync.replicas=2``): the leader of the task topic's partitions is
SIGKILLed mid-run. Nothing is lost."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import Driver, states_of, summarize, wait_finished, wait_ready
from tests.chaos.servers import KafkaCluster, RedisServer

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

TASKS = 800
RATE = 80.0  # the driver sends for 10 s; the leader is killed a third of the way


@pytest.fixture
def cluster3(chaos_lib: Path) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(3, lib=chaos_lib)
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.mark.timeout(480)
def test_partition_leader_killed(rig: RigFactory, cluster3: KafkaCluster, chaos_redis: RedisServer) -> None:
    r = rig(cluster3.bootstrap, chaos_redis.url, replication_factor="3", partitions="4",
            broker_options='{"acks": "all"}')
    fleet = r.fleet
    t0 = time.time()
    workers = [fleet.start() for _ in range(3)]
    wait_ready(r.app, [w.name for w in workers], fleet=fleet)
    driver = Driver(lambda n: r.module.work.delay(n, 0.02).id, TASKS, RATE)
    driver.start()
    time.sleep(TASKS / RATE / 3)
    leaders = cluster3.leaders(f"yadtq.{r.queue}")
    victim, partitions = Counter(leaders.values()).most_common(1)[0]
    cluster3.node(victim).stop(signal.SIGKILL)
    driver.finish(120)
    r.app.flush(60)
    done = wait_finished(r.ledger, driver.sent, timeout=180, app=r.app)
    summary = summarize("3-broker cluster, leader SIGKILLed", driver.sent, r.ledger.entries(),
                        states_of(r.app, driver.sent), fleet, started_at=t0, send_errors=len(driver.errors),
                        note=f"node {victim} led {partitions} of {len(leaders)} partitions; rf=3, "
                             f"min.insync.replicas=2, acks=all")
    summary.report()
    print(summary.line())
    assert done and not summary.lost, summary.line() + "\n" + fleet.logs()
    assert not driver.errors, driver.errors[:3]
    assert not summary.twice_unexplained, summary.line()
    assert not fleet.check_exits(), fleet.logs()
