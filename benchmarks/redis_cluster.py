"""Redis backend throughput on a Redis Cluster of one primary and of three (docs/performance.md).

Starts its own cluster with ``scripts/redis-cluster.sh`` (one primary, or three with a
replica each), then ``PROCESSES`` client processes drive the backend the way clients
and workers do, in batches: record ``queued`` (submit), ``claim`` (a worker takes the
task), record ``success`` (its outcome). Prints, as JSON, tasks per second and the CPU
seconds each primary spent (``INFO cpu``), per 1,000 tasks: the share of the work
each primary does, i.e. how far the backend's ceiling moves with more primaries on a
machine with cores to spare.

    python3 benchmarks/redis_cluster.py 1      # one primary
    python3 benchmarks/redis_cluster.py 3      # three primaries
    python3 benchmarks/redis_cluster.py single # one server, one slot group (redis+sentinel://)

Environment: ``PROCESSES`` (default 4), ``BENCH_SECONDS`` (default 10), ``BATCH`` (default 100).
Run from the repository root; needs redis-server and redis-cli.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.getcwd())

import redis

from tests.redis_topology import Topology
from yadtq.settings import load_settings
from yadtq.transports.base import Claim, StateChange
from yadtq.transports.redis import RedisBackend


def _drive(url: str, prefix: str, seconds: float, batch: int, done: Any) -> None:
    settings = load_settings(broker="memory://", backend=url, environ={},
                             backend_options={"prefix": prefix})
    backend = RedisBackend(url, settings)
    instance = uuid.uuid4().hex
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        ids = [uuid.uuid4().hex for _ in range(batch)]
        now = time.time()
        backend.record([StateChange(t, "queued", now, name="bench.add", queue="q") for t in ids])
        backend.claim([Claim(task_id=t, name="bench.add", queue="q", retries=0, instance=instance,
                             worker="bench", timestamp=now) for t in ids])
        backend.record([StateChange(t, "success", time.time(), result=b"\x02", worker="bench")
                        for t in ids])
        count += batch
    backend.close()
    with done.get_lock():
        done.value += count


def _cpu(ports: list[int]) -> dict[int, float]:
    used = {}
    for port in ports:
        info = redis.Redis(port=port).info("cpu")
        used[port] = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return used


def main(mode: str) -> dict[str, object]:
    processes = int(os.environ.get("PROCESSES", "4"))
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    batch = int(os.environ.get("BATCH", "100"))
    cluster = Topology("sentinel") if mode == "single" else Topology("cluster", mode)
    try:
        nodes = cluster.ports("node") or cluster.ports("primary")
        masters = [p for p in nodes if redis.Redis(port=p).info("replication")["role"] == "master"]
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        before = _cpu(masters)
        done = multiprocessing.Value("q", 0)
        procs = [multiprocessing.Process(target=_drive, args=(cluster.url, prefix, seconds, batch, done))
                 for _ in range(processes)]
        started = time.monotonic()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        elapsed = time.monotonic() - started
        after = _cpu(masters)
        tasks = int(done.value)
        per_primary = {str(p): round((after[p] - before[p]) / tasks * 1000, 3) for p in masters}
        return {"setup": "single server" if mode == "single" else f"cluster of {mode} primaries",
                "slot_groups": 1 if mode == "single" else 16, "processes": processes, "batch": batch,
                "tasks": tasks,
                "tasks_per_s": round(tasks / elapsed), "primary_cpu_s_per_1k_tasks": per_primary,
                "busiest_primary_cpu_s_per_1k_tasks": max(per_primary.values())}
    finally:
        cluster.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("1", "3", "single"):
        sys.exit("usage: python3 benchmarks/redis_cluster.py 1|3|single")
    print(json.dumps(main(sys.argv[1])))
