"""DESIGN.md §4 delivery semantics, proven with real Kafka, real Redis and real workers."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from yadtq import Revoked, states

from ..worker.helpers import wait_until
from ..worker.procs import running_workers, wait_ready
from .conftest import APP, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def committed_offsets(cluster: Cluster, bootstrap: str) -> dict[int, int]:
    topic = f"yadtq.{cluster.queue}"
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False})
    try:
        metadata = probe.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        return {tp.partition: tp.offset for tp in probe.committed(parts, timeout=10) if tp.offset >= 0}
    finally:
        probe.close()


def settle_group(cluster: Cluster, names: set[str], timeout: float = 60.0) -> None:
    """Send small batches until every worker has run one: the group has settled."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    n = 0
    while seen != names:
        assert time.monotonic() < deadline, f"only {seen} of {names} took part"
        batch = [cluster.module.add.delay(-1, n + i) for i in range(16)]
        n += 16
        for result in batch:
            result.get(timeout=30)
            seen.add(result.worker)


def test_1000_tasks_over_3_workers(cluster: Cluster) -> None:
    add = cluster.module.add
    with running_workers(3, APP, cluster.env, cluster.logdir, ["-c", "8"]) as workers:
        settle_group(cluster, {w.name for w in workers})
        results = [add.delay(i, i) for i in range(1000)]
        assert [r.get(timeout=120) for r in results] == [2 * i for i in range(1000)]
        assert {r.worker for r in results} == {w.name for w in workers}
    assert all(cluster.counter(f"add:{i}:{i}") == 1 for i in range(1000))


def test_no_head_of_line_blocking(cluster: Cluster, kafka_bootstrap: str) -> None:
    sleep_then = cluster.module.sleep_then
    with running_workers(1, APP, cluster.env, cluster.logdir, ["-c", "8"]) as workers:
        wait_ready(workers, cluster.app.get_worker_status)
        slow = sleep_then.apply_async(("slow", 20.0), key="same-partition")
        wait_until(lambda: cluster.counter("slow:started") == 1, timeout=30)
        quick = [sleep_then.apply_async((f"q{n}", 0.01), key="same-partition") for n in range(200)]
        for result in quick:
            result.get(timeout=30)
        # All 200 finished while the slow one, ahead of them in the partition, still runs;
        # and the committed offset has not moved past the unfinished slow task.
        assert slow.state == states.PROCESSING
        assert sum(committed_offsets(cluster, kafka_bootstrap).values()) <= 1
        assert slow.get(timeout=60) == "slow"
        # Once it ends, the committed offset moves past the slow one and all 200.
        wait_until(lambda: sum(committed_offsets(cluster, kafka_bootstrap).values()) >= 201, timeout=20)


def test_dedupe_under_concurrency(cluster: Cluster) -> None:
    once = cluster.module.once
    ids: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        mine = [once.delay(7).id for _ in range(250)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == 1000 and len(set(ids)) == 1
    with running_workers(1, APP, cluster.env, cluster.logdir):
        assert cluster.app.AsyncResult(ids[0]).get(timeout=30) == 7
    assert cluster.counter("once:7") == 1


def test_revoked_after_fetch_before_start_never_starts(cluster: Cluster) -> None:
    sleep_then = cluster.module.sleep_then
    with running_workers(1, APP, cluster.env, cluster.logdir, ["-c", "1"]) as workers:
        wait_ready(workers, cluster.app.get_worker_status)
        blocker = sleep_then.apply_async(("blocker", 2.0), key="k")
        wait_until(lambda: cluster.counter("blocker:started") == 1, timeout=30)
        victim = sleep_then.apply_async(("victim", 0.0), key="k")
        cluster.app.flush(10)
        time.sleep(0.5)  # let the worker's consumer fetch it into its buffer (the pool is full)
        victim.revoke()
        assert blocker.get(timeout=30) == "blocker"
        with pytest.raises(Revoked):
            victim.get(timeout=30)
        after = sleep_then.apply_async(("after", 0.0), key="k")
        assert after.get(timeout=30) == "after"
    assert cluster.counter("victim:started") == 0


def test_retry_with_backoff_then_success(cluster: Cluster) -> None:
    with running_workers(1, APP, cluster.env, cluster.logdir):
        result = cluster.module.flaky.delay("flaky", 3)
        assert result.get(timeout=60) == "recovered"
    assert result.retries == 3 and cluster.counter("flaky") == 4


def test_countdown_honoured_within_a_second(cluster: Cluster) -> None:
    with running_workers(1, APP, cluster.env, cluster.logdir) as workers:
        wait_ready(workers, cluster.app.get_worker_status)
        sent = time.time()
        result = cluster.module.stamp.apply_async(("cd",), countdown=2.0)
        ran_at = result.get(timeout=30)
    assert 2.0 <= ran_at - sent <= 3.0


def test_sigkill_loses_nothing_and_reruns_nothing_finished(cluster: Cluster) -> None:
    sleep_then = cluster.module.sleep_then
    done_before = [sleep_then.delay(f"early{n}", 0.0) for n in range(50)]
    with running_workers(1, APP, cluster.env, cluster.logdir, ["-c", "4"], prefix="victim") as (victim,):
        for r in done_before:
            r.get(timeout=60)
        in_flight = [sleep_then.delay(f"inflight{n}", 3.0) for n in range(4)]
        wait_until(lambda: all(cluster.counter(f"inflight{n}:started") == 1 for n in range(4)), timeout=30)
        victim.signal(signal.SIGKILL)
        victim.wait(10)
    with running_workers(1, APP, cluster.env, cluster.logdir, ["-c", "4"], prefix="rescuer"):
        for r in in_flight:
            assert r.get(timeout=90).startswith("inflight")
    assert all(cluster.counter(f"early{n}:started") == 1 for n in range(50))  # none ran twice
    assert all(cluster.counter(f"inflight{n}:finished") == 1 for n in range(4))


def test_sigterm_finishes_commits_and_nothing_is_redelivered(cluster: Cluster, kafka_bootstrap: str) -> None:
    sleep_then = cluster.module.sleep_then
    with running_workers(1, APP, cluster.env, cluster.logdir, ["-c", "4"]) as (worker,):
        results = [sleep_then.delay(f"term{n}", 1.0) for n in range(4)]
        wait_until(lambda: all(cluster.counter(f"term{n}:started") == 1 for n in range(4)), timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    assert all(r.state == states.SUCCESS for r in results)
    assert sum(committed_offsets(cluster, kafka_bootstrap).values()) == 4
    with running_workers(1, APP, cluster.env, cluster.logdir, prefix="second") as workers:
        wait_ready(workers, cluster.app.get_worker_status)
        assert cluster.module.add.delay(1, 1).get(timeout=30) == 2
    assert all(cluster.counter(f"term{n}:started") == 1 for n in range(4))


def test_task_longer_than_max_poll_interval(cluster: Cluster) -> None:
    env = dict(cluster.env, YADTQ_BROKER_OPTIONS='{"max.poll.interval.ms": 6000, "session.timeout.ms": 6000}')
    with running_workers(1, APP, env, cluster.logdir, ["-c", "2"]) as (worker,):
        result = cluster.module.sleep_then.delay("long", 9.0)
        assert result.get(timeout=60) == "long"
        assert cluster.module.add.delay(2, 2).get(timeout=30) == 4
        log = worker.log()
    assert cluster.counter("long:started") == 1
    assert log.count("revoked") <= 1, log


def test_garbage_on_the_topic_is_dead_lettered(cluster: Cluster, kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer

    before = cluster.module.add.delay(1, 1)  # creates the topic
    cluster.app.flush(10)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"yadtq.{cluster.queue}", b"\xc1\xc1 not a task", key=b"junk")
    producer.flush(10)
    after = cluster.module.add.delay(3, 4)
    with running_workers(1, APP, cluster.env, cluster.logdir):
        assert before.get(timeout=60) == 2
        assert after.get(timeout=60) == 7
    dlq = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"dlq-reader-{cluster.queue}",
                    "auto.offset.reset": "earliest"})
    dlq.subscribe(["yadtq.dlq"])
    found = False
    deadline = time.monotonic() + 30
    try:
        while not found and time.monotonic() < deadline:
            msg = dlq.poll(0.5)
            if msg is not None and not msg.error() and msg.value() == b"\xc1\xc1 not a task":
                found = True
    finally:
        dlq.close()
    assert found


def test_silent_worker_becomes_unresponsive(cluster: Cluster) -> None:
    with running_workers(1, APP, cluster.env, cluster.logdir, prefix="frozen") as (worker,):
        wait_ready([worker], cluster.app.get_worker_status)
        worker.signal(signal.SIGSTOP)
        try:
            wait_until(lambda: cluster.app.get_worker_status()["frozen0"]["status"] == "unresponsive",
                       timeout=30, interval=0.5)
        finally:
            worker.signal(signal.SIGCONT)
        wait_until(lambda: cluster.app.get_worker_status()["frozen0"]["status"] == "alive", timeout=15)
