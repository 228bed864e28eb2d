"""End to end alone, in rounds: no-op tasks sent with ``.delay()`` while worker processes
run, each result waited for in order; the workers' CPU and thread switches per task, and a
Redis backend's CPU.

    python3 benchmarks/end_to_end.py kafka://127.0.0.1:9092 redis://127.0.0.1:6379/0 \\
        [--tasks 6000] [--rounds 5] [--workers 2] [--concurrency 8]
    python3 benchmarks/end_to_end.py sqlite:////tmp/e2e.db sqlite:////tmp/e2e.db

The side-by-side harness's end-to-end phase (``benchmarks/peers/runner.py``) with more
tasks and rounds, for before/after figures of one change: a round of 3,000 tasks costs
the workers about 0.15 s of CPU, which ``/proc``'s 10 ms ticks measure to within about
10 %. Workers are ``yadtq worker -A yadtq.benchapp -c N`` processes in a namespace of
their own; a backlog of ``WARM_UP`` tasks is drained and the workers idle ``SETTLE``
seconds before the first round (as in the harness). Prints each round and the medians;
nothing here is asserted by tests.

Each round also prints how long the client went on reading results after the workers
stored the last one ("client lag", from the records' own time stamps: workers and client
on one host) and, with ``--kafka-pid $(pgrep -f kafka.Kafka)``, the broker's CPU per task.
Everything shares the machine's cores, so the rate is what all of them leave each other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from peers.runner import delete_namespace_keys

WARM_UP = 3000
SETTLE = 2.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes, from /proc."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def send_and_wait(app: Any, noop: Any, tasks: int) -> list[Any]:
    """One round's work for the workers: ``tasks`` no-ops sent with ``.delay()``, then
    every result waited for in order. Returns the results."""
    handles = [noop.delay() for _ in range(tasks)]
    app.flush(60)
    for handle in handles:
        handle.get(timeout=120)
    return handles


def last_stored(app: Any, handles: list[Any]) -> float:
    """The latest time stamp among the results' records (their last state change)."""
    latest = 0.0
    for start in range(0, len(handles), 1000):
        records = app.backend.get([h.id for h in handles[start:start + 1000]])
        latest = max([latest, *(r.updated for r in records if r is not None)])
    return latest


def switches(pids: list[int]) -> int:
    """Context switches of every thread of the processes, from /proc (each a thread that
    blocked, or was woken and preempted)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if "ctxt_switches:" in line:
                            total += int(line.split()[1])
            except OSError:
                pass  # a thread that ended meanwhile
    return total


def redis_cpu_seconds(client: object) -> float:
    """The Redis server's own CPU (``INFO cpu``, user + system), 0 without Redis."""
    if client is None:
        return 0.0
    info = client.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("broker")
    parser.add_argument("backend")
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kafka-pid", type=int, action="append", default=[],
                        help="a Kafka broker's process id: its CPU per task is printed too")
    args = parser.parse_args()
    queue = f"e2e{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, YADTQ_BROKER_URL=args.broker, YADTQ_BACKEND_URL=args.backend,
               YADTQ_DEFAULT_QUEUE=queue, YADTQ_NAMESPACE=queue)
    os.environ.update(env)
    from yadtq.benchapp import app, noop

    backlog = [noop.delay() for _ in range(WARM_UP)]
    app.flush(60)
    procs = [subprocess.Popen([sys.executable, "-m", "yadtq.cli", "worker", "-A", "yadtq.benchapp",
                               "-c", str(args.concurrency), "-l", "warning", "-n", f"{queue}-{n}"],
                              env=env) for n in range(args.workers)]
    rates: list[float] = []
    costs: list[float] = []
    redis_costs: list[float] = []
    switch_counts: list[float] = []
    client_costs: list[float] = []
    kafka_costs: list[float] = []
    lags: list[float] = []
    redis_client = None
    if args.backend.startswith(("redis://", "rediss://")):
        import redis

        redis_client = redis.Redis.from_url(args.backend)
    try:
        for handle in backlog:
            handle.get(timeout=120)
        del backlog
        time.sleep(SETTLE)
        pids = [p.pid for p in procs]
        for n in range(args.rounds):
            cpu0, started = cpu_seconds(pids), time.perf_counter()
            redis0, switches0 = redis_cpu_seconds(redis_client), switches(pids)
            client0, kafka0 = time.process_time(), cpu_seconds(args.kafka_pid)
            handles = send_and_wait(app, noop, args.tasks)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds(pids) - cpu0
            finished = time.time()
            client_costs.append((time.process_time() - client0) / args.tasks * 1e6)
            kafka_costs.append((cpu_seconds(args.kafka_pid) - kafka0) / args.tasks * 1e6)
            # Before last_stored: its reads of every record are this script's, not the round's.
            redis_costs.append((redis_cpu_seconds(redis_client) - redis0) / args.tasks * 1e6)
            lags.append((finished - last_stored(app, handles)) * 1000)
            rates.append(args.tasks / elapsed)
            costs.append(cpu / args.tasks * 1e6)
            switch_counts.append((switches(pids) - switches0) / args.tasks)
            print(f"round {n + 1}: {rates[-1]:,.0f} tasks/s, worker CPU {costs[-1]:.1f} us per task, "
                  f"{switch_counts[-1]:.1f} thread switches per task, client CPU {client_costs[-1]:.1f} us"
                  + (f", Redis CPU {redis_costs[-1]:.1f} us" if redis_client is not None else "")
                  + (f", Kafka CPU {kafka_costs[-1]:.1f} us" if args.kafka_pid else "")
                  + f"; client lag {lags[-1]:.0f} ms")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        app.purge(queue)
        app.close()
        if redis_client is not None:  # a shared Redis would keep every round's records a day
            delete_namespace_keys(args.backend, queue)
    print(f"median of {args.rounds}: {statistics.median(rates):,.0f} tasks/s, worker CPU "
          f"{statistics.median(costs):.1f} us and {statistics.median(switch_counts):.1f} thread "
          f"switches per task, client CPU {statistics.median(client_costs):.1f} us per task "
          f"({args.workers} workers -c {args.concurrency}, "
          f"{args.tasks} no-ops a round, {args.broker.split(':')[0]} + {args.backend.split(':')[0]})"
          + (f"; Redis CPU {statistics.median(redis_costs):.1f} us per task" if redis_client else "")
          + (f"; Kafka CPU {statistics.median(kafka_costs):.1f} us per task" if args.kafka_pid else "")
          + f"; client lag {statistics.median(lags):.0f} ms")


if __name__ == "__main__":
    main()
