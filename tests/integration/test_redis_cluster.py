"""Workers on Kafka with the backend on Redis Cluster and on Redis Sentinel, failovers included.

Executions are counted from inside the tasks in the plain test Redis (``YADTQ_TEST_REDIS``),
which no failover touches, so "ran once" is measured outside the system under test. The
workers are paused while the primary dies and its replica takes over, with every write
replicated: asynchronous replication may lose writes in flight (docs/semantics.md), which
these tests do not claim to survive.
"""

from __future__ import annotations

import importlib
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

from tests.redis_topology import Topology
from yadtq.exceptions import YADTQError

from ..worker.procs import WorkerProcess, running_workers, wait_ready, worker_env
from .conftest import APP, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow,
              pytest.mark.timeout(300)]

TASKS = 400
#: Seconds a result may take: the failover itself takes a few.
RESULT_TIMEOUT = 120


def _rig(backend: str, kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Cluster:
    settings = {
        "default_queue": f"rc-{unique}",
        "backend_options": json.dumps({"prefix": f"rc-{unique}"}),
        "heartbeat_interval": "1",
        "partitions": "4",
    }
    env = worker_env(f"kafka://{kafka_bootstrap}", backend, tmp_path, **settings)
    env["YADTQ_TEST_REDIS"] = redis_url
    env["YADTQ_TEST_COUNTERS"] = f"rc-{unique}:counters"
    for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_REDIS", "YADTQ_TEST_COUNTERS",
                *(f"YADTQ_{k.upper()}" for k in settings)):
        monkeypatch.setenv(key, env[key])
    module = importlib.reload(importlib.import_module(APP))
    return Cluster(env, module.app, module, redis_url, env["YADTQ_TEST_COUNTERS"], tmp_path)


@pytest.fixture
def own_cluster() -> Iterator[Topology]:
    """A Redis Cluster of this test's own: it kills one of its primaries."""
    started = Topology("cluster")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def own_sentinel() -> Iterator[Topology]:
    started = Topology("sentinel")
    try:
        yield started
    finally:
        started.stop()


def _run_through(rig: Cluster, fault: Any) -> None:
    """Run TASKS additions on two workers; call ``fault(workers)`` once a quarter are done;
    then every result arrives, every task ran exactly once and both workers still run."""
    add = rig.module.add
    try:
        with running_workers(2, APP, rig.env, rig.logdir, ["-c", "4"]) as workers:
            wait_ready(workers, rig.app.get_worker_status, timeout=60)
            results = [add.delay(i, 1000) for i in range(TASKS)]
            deadline = time.monotonic() + 120
            while sum(rig.counter(f"add:{i}:1000") for i in range(0, TASKS, 8)) < TASKS // 32:
                assert time.monotonic() < deadline, "the tasks did not start"
                time.sleep(0.05)
            fault(workers)
            for i, r in enumerate(results):
                try:
                    value = r.get(timeout=RESULT_TIMEOUT)
                except YADTQError as exc:
                    value = exc
                runs = rig.counter(f"add:{i}:1000")
                assert value == i + 1000, f"{i}: {value!r}: {rig.app.backend.get([r.id])} ran {runs} time(s)"
            assert [w.name for w in workers if w.proc.poll() is not None] == []
        runs = [rig.counter(f"add:{i}:1000") for i in range(TASKS)]
        assert [i for i, n in enumerate(runs) if n != 1] == []
    finally:
        rig.app.close()
        rig.redis.close()


def test_workers_on_redis_cluster(kafka_bootstrap: str, redis_url: str, redis_cluster: Topology,
                                  unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = _rig(redis_cluster.url, kafka_bootstrap, redis_url, unique, tmp_path, monkeypatch)
    backend = rig.app.backend
    _run_through(rig, lambda workers: None)
    # The state really is spread over the primaries: every slot group got writes.
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url.replace("redis+cluster", "redis", 1)
                                                 .split(",")[0])
    try:
        stats = [client.hgetall(backend.key("stats", group=g)) for g in range(backend.layout.groups)]
        assert all(s.get(b"succeeded") for s in stats)
        owners = {client.get_node_from_key(backend.key("stats", group=g)).name
                  for g in range(backend.layout.groups)}
        assert len(owners) == 3
    finally:
        client.close()


def _offset(port: int, field: str) -> int:
    node = redis.Redis(port=port, decode_responses=True)
    try:
        return int(node.info("replication")[field])
    finally:
        node.close()


@contextmanager
def _writes_replicated(workers: list[WorkerProcess], primary: int, replica: int) -> Iterator[None]:
    """Workers stopped (SIGSTOP) and every write of ``primary`` on ``replica`` for the
    duration, workers continued after it: the failover then loses nothing, which
    asynchronous replication does not promise for writes still in flight
    (docs/semantics.md)."""
    for w in workers:
        w.signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 30
        while _offset(replica, "slave_repl_offset") < _offset(primary, "master_repl_offset"):
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)
        yield
    finally:
        for w in workers:
            w.signal(signal.SIGCONT)


def _replica_of(primary: int) -> int:
    node = redis.Redis(port=primary, decode_responses=True)
    try:
        return int(node.info("replication")["slave0"]["port"])
    finally:
        node.close()


def _primary_of(url: str, key: str) -> int:
    client = redis.cluster.RedisCluster.from_url(url.replace("redis+cluster", "redis", 1).split(",")[0])
    try:
        return int(client.get_node_from_key(key).port)
    finally:
        client.close()


def _failed_over(ports: list[int], victim: int) -> bool:
    """Every surviving node marks ``victim`` failed and sees all slots served again."""
    for port in ports:
        node = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
        try:
            info = node.cluster("info")
            nodes = node.execute_command("CLUSTER", "NODES")
        except redis.RedisError:
            return False
        finally:
            node.close()
        text = nodes if isinstance(nodes, str) else str(nodes)
        lines = [line.split() for line in text.splitlines() if line.strip()]
        dead = [f for f in lines if f[1].startswith(f"127.0.0.1:{victim}@")]
        if info.get("cluster_state") != "ok" or not dead or "fail" not in dead[0][2].split(","):
            return False
    return True


def test_primary_killed_mid_run_on_redis_cluster(
        kafka_bootstrap: str, redis_url: str, own_cluster: Topology, unique: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = _rig(own_cluster.url, kafka_bootstrap, redis_url, unique, tmp_path, monkeypatch)
    # The primary of slot group 0: the worker registry and liveness live there too.
    victim = _primary_of(own_cluster.url, rig.app.backend.key("stats", group=0))
    others = [p for p in own_cluster.ports("node") if p != victim]

    def kill(workers: list[WorkerProcess]) -> None:
        with _writes_replicated(workers, victim, _replica_of(victim)):
            own_cluster.kill(victim)
            deadline = time.monotonic() + 60
            while not _failed_over(others, victim):
                assert time.monotonic() < deadline, "the replica was not promoted"
                time.sleep(0.2)

    _run_through(rig, kill)
    assert _primary_of(own_cluster.url.replace(f"127.0.0.1:{victim},", ""),
                       rig.app.backend.key("stats", group=0)) != victim


def test_sentinel_failover_mid_run(kafka_bootstrap: str, redis_url: str, own_sentinel: Topology,
                                   unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = _rig(own_sentinel.url, kafka_bootstrap, redis_url, unique, tmp_path, monkeypatch)
    primary, = own_sentinel.ports("primary")
    replica, = own_sentinel.ports("replica")
    sentinels = [redis.Redis(port=p, decode_responses=True) for p in own_sentinel.ports("sentinel")]

    def kill(workers: list[WorkerProcess]) -> None:
        with _writes_replicated(workers, primary, replica):
            own_sentinel.kill(primary)
            deadline = time.monotonic() + 60
            while any(int(s.sentinel_get_master_addr_by_name("yadtq")[1]) != replica for s in sentinels):
                assert time.monotonic() < deadline, "the sentinels did not fail over"
                time.sleep(0.2)

    try:
        _run_through(rig, kill)
    finally:
        for s in sentinels:
            s.close()


@pytest.mark.parametrize("setup", ["redis_cluster", "redis_sentinel"])
def test_waits_are_woken_on_cluster_and_sentinel(setup: str, request: pytest.FixtureRequest,
                                                  unique: str) -> None:
    """Blocking and asyncio waits on tasks of every slot group are woken by the record
    that finishes them (pub/sub across the cluster's nodes; one inbox per event loop)."""
    import asyncio
    import threading

    from yadtq.settings import load_settings
    from yadtq.transports.base import StateChange
    from yadtq.transports.redis import RedisBackend

    url = request.getfixturevalue(setup).url
    backend = RedisBackend(url, load_settings(broker="memory://", backend=url, environ={},
                                              backend_options={"prefix": f"wait-{unique}"}))
    ids = [f"t{n}" for n in range(40)]
    try:
        backend.record([StateChange(t, "queued", time.time(), name="n") for t in ids])
        finish = threading.Timer(1.0, lambda: backend.record(
            [StateChange(t, "success", time.time(), result=b"\x01") for t in ids]))

        async def wait_all() -> list[Any]:
            finish.start()
            return list(await asyncio.gather(*(backend.wait_async(t, 60) for t in ids[1:])))

        started = time.monotonic()
        records = asyncio.run(wait_all())
        assert [r.state for r in records] == ["success"] * (len(ids) - 1)
        assert time.monotonic() - started < 30  # woken, not timed out
        blocking = backend.wait(ids[0], 60)
        assert blocking is not None and blocking.state == "success"
        if backend.layout.groups > 1:
            assert len({backend.layout.group(t) for t in ids}) > 8
    finally:
        finish.cancel()
        backend.close()
