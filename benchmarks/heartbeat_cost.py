"""What a worker's heartbeat spends looking for dead workers, against how many stopped
workers the registry keeps (it keeps them for ``worker_retention``, a day by default).

    python3 benchmarks/heartbeat_cost.py redis://127.0.0.1:6379/0 [STOPPED] [--after S]
    python3 benchmarks/heartbeat_cost.py sqlite:////tmp/hb.db [STOPPED] [--after S]

Registers STOPPED (default 1,000) stopped workers and 20 running ones in a namespace
of its own, then times, per call, the heartbeat's question asked two ways: every report
read and filtered (``workers()``, what each heartbeat did before) and
``silent_workers(after)``. ``--after`` defaults to 15 s (nobody is that silent here);
a tiny one (``--after 0.0001``) makes every running worker silent, the most
``silent_workers`` can have to read. Redis keys are deleted afterwards. Nothing here
is asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any, Callable

RUNNING = 20
CALLS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend")
    parser.add_argument("stopped", nargs="?", type=int, default=1000)
    parser.add_argument("--after", type=float, default=15.0)
    options = parser.parse_args()
    namespace = f"hb{uuid.uuid4().hex[:6]}"
    os.environ["YADTQ_NAMESPACE"] = namespace
    from yadtq import YADTQ
    from yadtq.transports.base import WORKER_RUNNING, WorkerInfo

    backend = YADTQ("heartbeat-cost", backend=options.backend).backend
    now = time.time()

    def report(name: str, state: str) -> WorkerInfo:
        return WorkerInfo(worker=name, instance=f"{name}#probe", hostname="probe", pid=1,
                          queues=("default",), concurrency=8, pool="threads", started=now - 100,
                          state=state, extra={"rss": 50_000_000})

    for i in range(options.stopped):
        backend.heartbeat(report(f"stopped-{i}", "stopped"))
    for i in range(RUNNING):
        backend.heartbeat(report(f"running-{i}", WORKER_RUNNING))
    after = options.after
    ways: dict[str, Callable[[], Any]] = {
        "every report, filtered": lambda: [w for w in backend.workers()
                                           if w.state == WORKER_RUNNING and w.silent > after],
        "silent_workers": lambda: backend.silent_workers(after),
    }
    try:
        for label, ask in ways.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(CALLS):
                ask()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{options.stopped} stopped + {RUNNING} running, after {after:g} s: {label:24s} "
                  f"CPU {cpu / CALLS * 1000:.3f} ms, wall {wall / CALLS * 1000:.3f} ms per heartbeat")
    finally:
        client = getattr(backend, "_redis", None)
        if client is not None:
            for key in client.scan_iter(f"{namespace}*"):
                client.delete(key)


if __name__ == "__main__":
    main()
