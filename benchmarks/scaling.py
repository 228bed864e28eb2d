"""How cost grows: throughput and worker CPU per task against one dimension at a time.

    python3 benchmarks/scaling.py --broker kafka://127.0.0.1:9092 --backend redis://127.0.0.1:6379/0 \\
        [--tasks 1000,10000] [--payloads 100,10000] [--workers 1,2] [--partitions 8,32] [--countdown 1000]
    python3 benchmarks/scaling.py --broker sqlite:///tmp/s.db --backend sqlite:///tmp/s.db --tasks 1000

Each figure is one run: N ``bench.sink(payload)`` tasks sent with one ``app.send_many``
to a fresh queue while the workers run (``yadtq worker -A yadtq.benchapp -c 8``
processes), then the time until every result is stored (checked in batches) and the
workers' CPU (user + system, /proc, process trees) per task. The base case is
1,000 tasks, 100-byte payloads, 1 worker, 8 partitions; each list varies one
dimension. ``--countdown N`` sends N tasks due at one moment 3 s ahead and times
from that moment until all are stored. Prints one Markdown table; nothing here is
asserted by tests (docs/performance.md quotes it with its command).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))
from runner import cpu_seconds, workers  # noqa: E402

BASE = {"tasks": 1000, "payload": 100, "workers": 1, "partitions": 8}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def measure(args: argparse.Namespace, tasks: int, payload: int, n_workers: int, partitions: int,
            countdown: bool = False) -> dict[str, Any]:
    """One run; returns its figures."""
    queue = f"scale{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, YADTQ_BROKER_URL=args.broker, YADTQ_BACKEND_URL=args.backend,
               YADTQ_DEFAULT_QUEUE=queue, YADTQ_PARTITIONS=str(partitions))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    os.environ.update(env)
    from yadtq import YADTQ

    app = YADTQ("scale")  # the client: the same transports and queue as the workers
    sink = app.task(name="bench.sink")(_sink)
    cmd = [sys.executable, "-m", "yadtq.cli", "worker", "-A", "yadtq.benchapp", "-c", "8", "-l", "warning"]
    try:
        with workers([[*cmd, "-n", f"{queue}-{i}"] for i in range(n_workers)], env) as procs:
            pids = [p.pid for p in procs]
            warm = app.send_many([sink.s(b"") for _ in range(50)])
            _wait_all(app, [r.id for r in warm], args.timeout)
            body = os.urandom(payload // 2).hex().encode()[:payload]
            cpu0 = cpu_seconds(pids)
            started = time.perf_counter()
            if countdown:
                due = app.now() + 3.0
                results = app.send_many([sink.s(body).set(eta=due) for _ in range(tasks)])
                app.flush(60)
                started += max(0.0, due - app.now())
            else:
                results = app.send_many([sink.s(body) for _ in range(tasks)])
                app.flush(60)
            _wait_all(app, [r.id for r in results], args.timeout)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pids) - cpu0
    finally:
        app.purge(queue)
        app.close()
    return {"tasks": tasks, "payload": payload, "workers": n_workers, "partitions": partitions,
            "countdown": countdown, "per_s": tasks / elapsed, "cpu_ms_per_task": cpu / tasks * 1000}


def _sink(payload: bytes) -> None:
    """The client's stand-in for ``yadtq.benchapp.sink`` (same name, never run here)."""


def _wait_all(app: Any, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while ids:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids)} tasks not done within {timeout:g} s")
        pending = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for task_id, record in zip(chunk, app.backend.get(chunk)):
                if record is None or record.state != "success":
                    pending.append(task_id)
        ids = pending
        if ids:
            time.sleep(0.05)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--tasks", type=_ints, default=[1000, 10000])
    p.add_argument("--payloads", type=_ints, default=[100, 10000])
    p.add_argument("--workers", dest="worker_counts", type=_ints, default=[1, 2])
    p.add_argument("--partitions", type=_ints, default=[8, 32])
    p.add_argument("--countdown", type=int, default=0, help="tasks due at once (0: skip)")
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    runs: list[tuple[str, dict[str, Any]]] = []
    runs += [("tasks", dict(BASE, tasks=n)) for n in args.tasks]
    # Large payloads: fewer tasks, at most ~100 MB moved per run.
    runs += [("payload bytes", dict(BASE, payload=n, tasks=max(10, min(BASE["tasks"], 100_000_000 // n))))
             for n in args.payloads if n != BASE["payload"]]
    runs += [("workers", dict(BASE, workers=n)) for n in args.worker_counts if n != BASE["workers"]]
    runs += [("partitions", dict(BASE, partitions=n)) for n in args.partitions
             if n != BASE["partitions"] and args.broker.startswith("kafka")]
    print("| varied | tasks | payload B | workers | partitions | tasks/s | worker CPU ms per task |")
    print("|---|---|---|---|---|---|---|")
    for what, c in runs:
        _row(what, measure(args, c["tasks"], c["payload"], c["workers"], c["partitions"]))
    if args.countdown:
        _row("countdown, due at once", measure(args, args.countdown, BASE["payload"], BASE["workers"],
                                               BASE["partitions"], True))
    return 0


def _row(what: str, r: dict[str, Any]) -> None:
    print(f"| {what} | {r['tasks']:,} | {r['payload']:,} | {r['workers']} | {r['partitions']} "
          f"| {r['per_s']:,.0f} | {r['cpu_ms_per_task']:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
