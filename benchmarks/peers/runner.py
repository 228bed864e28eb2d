"""One system, one round of the side-by-side benchmark; prints one JSON line.

    python runner.py SYSTEM --kafka HOST:PORT --redis redis://... [--tasks N] ...

SYSTEM is one of ``SYSTEMS``. Run by compare.py: yadtq's systems with the project's
Python, the peers with the Python of their own virtual environment. The same
workloads for every system, in this order:

1. enqueue: after an untimed warm-up (``WARM_UP_BATCHES`` of ``WARM_UP`` sends, each
   flushed: connections, topic creation, a new Kafka topic's slow first writes), N no-op tasks
   sent one call at a time with no worker running, until
   the client library says they are sent (flushed); then, for systems with a bulk
   send (yadtq's ``app.send_many``), N more in one bulk call ("bulk");
2. 2 worker processes start and drain that backlog (not timed: warm-up), then
   idle ``SETTLE`` seconds (a consumer group may still be moving partitions) and, on
   Kafka, until the workers' consumer group is stable with a share of the partitions
   for each (``GROUP_SETTLE_MAX`` at most; the wait is reported as ``settle_s``);
3. end to end: N no-op tasks sent one call at a time while the workers run, until
   the client has every result; the workers' CPU time over this phase;
4. round trip: sequential ``add(2, 3)`` sent and waited for, p50 and p99;
5. idle: the workers' CPU over ``--idle`` seconds with nothing to do, and RSS.

Each client waits for results the fastest way its library offers (yadtq and Celery
pub/sub, Huey ``notify_result`` BLPOP, Dramatiq BLPOP, RQ XREAD BLOCK).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYSTEMS = ("yadtq-kafka", "yadtq-sqlite", "huey", "celery-kafka", "dramatiq", "rq")
WAIT = 120.0  # seconds: bound on any single wait for a result
TICK = os.sysconf("SC_CLK_TCK")
#: Systems too slow for the common task count run this share of it (rates stay comparable).
SCALE = {"rq": 0.1}
#: Untimed sends before the enqueue is timed, for every system: ``WARM_UP_BATCHES``
#: batches of ``WARM_UP``, each flushed. A Kafka broker acknowledges a new topic's first
#: writes slowly whoever writes them (plain confluent-kafka, 8 partitions, batches of
#: 1,000 messages of 200 B, each flushed: 0.51 s, 0.08-0.33 s, then 0.004-0.015 s from
#: the third batch on; docs/performance-history.md), and a queue's topic is created on first
#: use: fewer warm-up writes leave that cost to the timed part.
WARM_UP = 1000
WARM_UP_BATCHES = 3
#: Seconds every system idles between draining the backlog and the timed end to end.
#: Workers started together join a Kafka consumer group one after another: the first
#: takes every partition, and moving half of them to the next takes about a second
#: (a cooperative rebalance's second round waits for the new member's next heartbeat),
#: which fell on the timed part in 2 of 4 rounds when the drain ended first (yadtq:
#: 1.1-1.6 s for 3,000 tasks against 0.27-0.35 s; docs/performance-history.md).
SETTLE = 2.0
#: Longest a Kafka system then waits for its consumer group to be stable with every
#: worker assigned partitions. Celery's Kafka transport (kombu) commits each message it
#: acknowledges, asynchronously: the first worker, holding every partition while it
#: drains the backlog, queues thousands of commits on its connection to the group
#: coordinator, and its heartbeats and the second worker's join wait behind them. The
#: rebalance that lets the second one in came 12-35 s after the start, mid-way through
#: the timed end to end, and its partitions stood still for 20-45 s while the first
#: worker's queued commits were answered (librdkafka finishes them before it rejoins): 76
#: and 100 tasks/s in two rounds of 2026-12-04 against 666 in the third (librdkafka's
#: ``cgrp`` debug log). The timed part starts from the group each system settles into.
GROUP_SETTLE_MAX = 120.0
#: Sequential round trips a round times. Their p99 is the 11th slowest of 1,000; of 200
#: (the count until 2026-12-03) it was the 2nd slowest, which for yadtq on Kafka moved
#: from 2.1 to 9.0 ms over four back-to-back runs of one code (2.3-3.6 ms with 1,000).
ROUND_TRIPS = 1000


# ------------------------------------------------------------------ process accounting
def _tree(pid: int) -> list[int]:
    """The pid and every live descendant."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes and their live descendants."""
    total = 0
    for root in pids:
        for p in _tree(root):
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
    return total / TICK


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its live descendants, MB."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def group_settled(bootstrap: str, group: str, members: int, timeout: float) -> bool:
    """Wait until the Kafka consumer group is stable with ``members`` members, each
    assigned partitions; ``False`` if it was not within ``timeout`` seconds."""
    from confluent_kafka import ConsumerGroupState, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            if (found.state == ConsumerGroupState.STABLE and len(found.members) == members
                    and all(m.assignment.topic_partitions for m in found.members)):
                return True
        except KafkaException:
            pass  # the coordinator is busy or moving: asked again
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def delete_namespace_keys(url: str, namespace: str) -> int:
    """UNLINK every Redis key under ``namespace:`` (SCAN by prefix, in batches); nothing
    else in the database is touched. Returns how many were deleted."""
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    batch: list[bytes] = []
    try:
        for key in client.scan_iter(match=f"{namespace}:*", count=5000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


@contextmanager
def workers(cmds: list[list[str]], env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    quiet = None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL
    procs = [subprocess.Popen(cmd, env=env, cwd=os.path.join(HERE, "apps"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=quiet) for cmd in cmds]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                for p in reversed(_tree(proc.pid)):
                    with suppress(OSError):
                        os.kill(p, 9)
                proc.wait(5)


# ------------------------------------------------------------------ systems
class System:
    """What differs between task queues: sending, waiting, worker command, cleanup."""

    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        self.args = args
        self.queue = queue
        self.env = dict(os.environ, BENCH_QUEUE=queue, BENCH_REDIS=args.redis, BENCH_KAFKA=args.kafka)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.join(HERE, "apps"), os.environ.get("PYTHONPATH")) if p)
        os.environ.update(self.env)
        sys.path.insert(0, os.path.join(HERE, "apps"))

    def noop(self) -> Any:
        raise NotImplementedError

    def add(self, x: int, y: int) -> Any:
        raise NotImplementedError

    def wait(self, handle: Any) -> Any:
        raise NotImplementedError

    def flush(self) -> None:
        """Block until every sent task has left the client."""

    def consumer_group(self) -> Optional[str]:
        """The Kafka consumer group its workers share, if they consume from Kafka."""
        return None

    def bulk(self, n: int) -> Optional[list[Any]]:
        """Send ``n`` no-op tasks in one bulk call; ``None`` if the system has none."""
        return None

    def worker_cmd(self, n: int) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Drop what the run left behind."""


class Yadtq(System):
    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        super().__init__(args, queue)
        if args.system == "yadtq-kafka":
            broker, backend = f"kafka://{args.kafka}", args.redis
        else:
            db = os.path.join(args.tmp, f"{queue}.db")
            broker = backend = f"sqlite:///{db}"
        # A namespace of its own, as every peer's queue is its own: the workers' heartbeats
        # then read the records of this round's workers only, not those every earlier run
        # left in a shared Redis (they read every worker's record; see docs/performance.md).
        self.env.update(YADTQ_BROKER_URL=broker, YADTQ_BACKEND_URL=backend, YADTQ_DEFAULT_QUEUE=queue,
                        YADTQ_NAMESPACE=queue)
        self.env["PYTHONPATH"] = os.pathsep.join((REPO, self.env["PYTHONPATH"]))
        os.environ.update(self.env)
        from yadtq import benchapp

        self.app = benchapp.app
        self._noop, self._add = benchapp.noop, benchapp.add

    def noop(self) -> Any:
        return self._noop.delay()

    def consumer_group(self) -> Optional[str]:
        if self.args.system != "yadtq-kafka":
            return None
        from yadtq.namespace import Naming
        from yadtq.transports.kafka_naming import group_for

        return group_for(Naming.of(self.app.settings), self.queue)

    def add(self, x: int, y: int) -> Any:
        return self._add.delay(x, y)

    def wait(self, handle: Any) -> Any:
        return handle.get(timeout=WAIT)

    def flush(self) -> None:
        self.app.flush(60)

    def bulk(self, n: int) -> Optional[list[Any]]:
        return list(self.app.send_many([self._noop.s() for _ in range(n)]))

    def worker_cmd(self, n: int) -> list[str]:
        return [sys.executable, "-m", "yadtq.cli", "worker", "-A", "yadtq.benchapp", "-c", "8",
                "-l", "warning", "-n", f"{self.queue}-{n}"]

    def close(self) -> None:
        self.app.purge(self.queue)
        self.app.close()
        if self.args.system == "yadtq-kafka":
            delete_namespace_keys(self.args.redis, self.queue)


class Huey(System):
    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        super().__init__(args, queue)
        import huey_app

        self.mod = huey_app

    def noop(self) -> Any:
        return self.mod.noop()

    def add(self, x: int, y: int) -> Any:
        return self.mod.add(x, y)

    def wait(self, handle: Any) -> Any:
        return handle.get(blocking=True, timeout=WAIT)

    def worker_cmd(self, n: int) -> list[str]:
        return [sys.executable, "-m", "huey.bin.huey_consumer", "huey_app.huey", "-k", "thread",
                "-w", "8", "-q"]

    def close(self) -> None:
        self.mod.huey.storage.flush_all()


class CeleryKafka(System):
    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        super().__init__(args, queue)
        import celery_app

        self.mod = celery_app

    def noop(self) -> Any:
        return self.mod.noop.delay()

    def consumer_group(self) -> Optional[str]:
        return f"{self.queue}-consumer-group"  # kombu's name for a queue's group

    def add(self, x: int, y: int) -> Any:
        return self.mod.add.delay(x, y)

    def wait(self, handle: Any) -> Any:
        return handle.get(timeout=WAIT)

    def worker_cmd(self, n: int) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "threads",
                "-c", "8", "-l", "warning", "-n", f"w{n}@{self.queue}", "--without-gossip",
                "--without-mingle", "--without-heartbeat"]


class Dramatiq(System):
    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        super().__init__(args, queue)
        import dramatiq_app

        self.mod = dramatiq_app

    def noop(self) -> Any:
        return self.mod.noop.send()

    def add(self, x: int, y: int) -> Any:
        return self.mod.add.send(x, y)

    def wait(self, handle: Any) -> Any:
        return handle.get_result(block=True, timeout=int(WAIT * 1000))

    def worker_cmd(self, n: int) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "dramatiq_app", "--processes", "1", "--threads", "8",
                "-Q", self.queue]

    def close(self) -> None:
        self.mod.broker.flush_all()


class Rq(System):
    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        super().__init__(args, queue)
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(args.redis)
        self.q = Queue(queue, connection=self.redis)

    def noop(self) -> Any:
        return self.q.enqueue("rq_app.noop")

    def add(self, x: int, y: int) -> Any:
        return self.q.enqueue("rq_app.add", x, y)

    def wait(self, handle: Any) -> Any:
        result = handle.latest_result(timeout=int(WAIT))
        if result is None or result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"rq job {handle.id} did not succeed: {result}")
        return result.return_value

    def worker_cmd(self, n: int) -> list[str]:
        return [sys.executable, "-m", "rq.cli", "worker", "-u", self.args.redis, "-w",
                "rq.worker.SimpleWorker", "-q", self.queue]

    def close(self) -> None:
        self.q.empty()


CLASSES = {"yadtq-kafka": Yadtq, "yadtq-sqlite": Yadtq, "huey": Huey, "celery-kafka": CeleryKafka,
           "dramatiq": Dramatiq, "rq": Rq}


# ------------------------------------------------------------------ workloads
def run(args: argparse.Namespace) -> dict[str, Any]:
    system = CLASSES[args.system](args, f"peers{uuid.uuid4().hex[:8]}")
    n = max(100, int(args.tasks * SCALE.get(args.system, 1.0)))
    out: dict[str, Any] = {"system": args.system, "tasks": n}
    try:
        # Untimed sends first, for every system: connecting and provisioning (yadtq
        # creates its queue's topic on first use, whose first writes are slow) are setup.
        backlog = []
        for _ in range(WARM_UP_BATCHES):
            backlog += [system.noop() for _ in range(min(n, WARM_UP))]
            system.flush()
        started = time.perf_counter()
        backlog += [system.noop() for _ in range(n)]
        system.flush()
        out["enqueue_s"] = time.perf_counter() - started
        out["enqueue_per_s"] = n / out["enqueue_s"]
        started = time.perf_counter()
        bulk = system.bulk(n)
        if bulk is not None:
            system.flush()
            out["bulk_per_s"] = n / (time.perf_counter() - started)
            backlog.extend(bulk)
        if args.enqueue_only:
            return out
        with workers([system.worker_cmd(i) for i in range(args.workers)], system.env) as procs:
            pids = [p.pid for p in procs]
            started = time.perf_counter()
            for handle in backlog:
                system.wait(handle)
            out["drain_s"] = time.perf_counter() - started
            time.sleep(SETTLE)
            group = system.consumer_group()
            if group is not None:
                started = time.perf_counter()
                out["settled"] = group_settled(args.kafka, group, args.workers, GROUP_SETTLE_MAX)
                out["settle_s"] = time.perf_counter() - started
            cpu0, started = cpu_seconds(pids), time.perf_counter()
            handles = [system.noop() for _ in range(n)]
            system.flush()
            for handle in handles:
                system.wait(handle)
            elapsed = time.perf_counter() - started
            out["end_to_end_s"] = elapsed
            out["end_to_end_per_s"] = n / elapsed
            out["worker_cpu_s_per_10k"] = (cpu_seconds(pids) - cpu0) / n * 10_000
            samples = []
            for _ in range(args.samples):
                t0 = time.perf_counter()
                if system.wait(system.add(2, 3)) != 5:
                    raise RuntimeError("add(2, 3) did not return 5")
                samples.append((time.perf_counter() - t0) * 1000)
            out["round_trips_s"] = sum(samples) / 1000
            samples.sort()
            out["rt_p50_ms"] = statistics.median(samples)
            out["rt_p99_ms"] = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            time.sleep(args.settle)
            cpu0, started = cpu_seconds(pids), time.perf_counter()
            time.sleep(args.idle)
            idle = (cpu_seconds(pids) - cpu0) / (time.perf_counter() - started)
            out["idle_cpu_pct"] = idle / len(pids) * 100
            out["idle_rss_mb"] = max(rss_mb(pid) for pid in pids)
    finally:
        try:
            system.close()
        except Exception as exc:  # cleanup is best effort: the figures are already taken
            out["cleanup_error"] = repr(exc)
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("system", choices=SYSTEMS)
    p.add_argument("--kafka", required=True, help="Kafka bootstrap HOST:PORT")
    p.add_argument("--redis", required=True, help="redis://HOST:PORT/DB")
    p.add_argument("--tmp", default="/tmp", help="directory for SQLite files")
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--samples", type=int, default=ROUND_TRIPS)
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--enqueue-only", action="store_true",
                   help="stop after the enqueue and bulk-send workloads (no workers)")
    return p.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except Exception as exc:
        result = {"system": args.system, "error": f"{type(exc).__name__}: {exc}"[:300]}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
