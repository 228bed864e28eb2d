"""Worker CPU per task of two checkouts, side by side, round by round:

    git worktree add /tmp/before <commit>
    python3 benchmarks/worker_ab.py kafka://HOST:PORT redis://HOST:PORT/0 /tmp/before . \\
        [--rounds 20] [--tasks 6000]

Two sets of ``yadtq worker -A yadtq.benchapp -c 8`` processes, set A importing yadtq
from the first tree and set B from the second, each on a queue and namespace of its
own, fed by one client in alternating rounds (A then B, then B then A, ...): both
sets meet the same machine, whose speed here drifts by 2x within minutes, which
separate runs of ``end_to_end.py`` do not. Each round sends ``--tasks`` no-ops with
``.delay()`` and waits for every result; prints each set's median worker CPU per
task and the median of B/A over the round pairs. Run it a second time with the trees
swapped: the set started first tends to come out a few percent ahead (an A/A run
here: B/A 0.97), and the two orders together cancel that. Nothing here is asserted
by tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from end_to_end import SETTLE, WARM_UP, cpu_seconds, send_and_wait
from peers.runner import delete_namespace_keys


@dataclass
class WorkerSet:
    label: str
    tree: str
    queue: str
    app: Any
    noop: Any
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)


def start(label: str, tree: str, args: argparse.Namespace) -> WorkerSet:
    from yadtq import YADTQ

    queue = f"ab{label.lower()}{uuid.uuid4().hex[:8]}"
    app = YADTQ("bench", broker=args.broker, backend=args.backend, namespace=queue, default_queue=queue)
    noop = app.task(name="bench.noop")(lambda: None)
    workers = WorkerSet(label, tree, queue, app, noop)
    backlog = [noop.delay() for _ in range(WARM_UP)]
    app.flush(60)
    env = dict(os.environ, YADTQ_BROKER_URL=args.broker, YADTQ_BACKEND_URL=args.backend,
               YADTQ_DEFAULT_QUEUE=queue, YADTQ_NAMESPACE=queue, PYTHONPATH=os.path.abspath(tree))
    workers.procs = [subprocess.Popen([sys.executable, "-m", "yadtq.cli", "worker", "-A", "yadtq.benchapp",
                                       "-c", "8", "-l", "warning", "-n", f"{queue}-{n}"], env=env)
                     for n in range(args.workers)]
    for handle in backlog:
        handle.get(timeout=120)
    return workers


def one_round(workers: WorkerSet, tasks: int) -> None:
    pids = [p.pid for p in workers.procs]
    cpu0 = cpu_seconds(pids)
    send_and_wait(workers.app, workers.noop, tasks)
    workers.costs.append((cpu_seconds(pids) - cpu0) / tasks * 1e6)


def stop(workers: WorkerSet, backend: str) -> None:
    for p in workers.procs:
        p.terminate()
    for p in workers.procs:
        p.wait(30)
    workers.app.purge(workers.queue)
    workers.app.close()
    if backend.startswith(("redis://", "rediss://")):
        delete_namespace_keys(backend, workers.queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("broker")
    parser.add_argument("backend")
    parser.add_argument("tree_a", help="checkout whose yadtq set A's workers import")
    parser.add_argument("tree_b", help="checkout whose yadtq set B's workers import")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sets: list[WorkerSet] = []
    try:
        for label, tree in (("A", args.tree_a), ("B", args.tree_b)):
            sets.append(start(label, tree, args))
        time.sleep(SETTLE)
        for n in range(args.rounds):
            for workers in (sets if n % 2 == 0 else sets[::-1]):
                one_round(workers, args.tasks)
    finally:
        for workers in sets:
            stop(workers, args.backend)
    for workers in sets:
        print(f"{workers.label} ({workers.tree}): worker CPU {statistics.median(workers.costs):.1f} us per "
              f"task, median of {args.rounds} rounds")
    ratios = [b / a for a, b in zip(sets[0].costs, sets[1].costs)]
    print(f"B/A by round pair: {' '.join(f'{r:.2f}' for r in ratios)}")
    print(f"median B/A: {statistics.median(ratios):.3f} ({args.workers} workers -c 8 a set, "
          f"{args.tasks} no-ops a round, {args.broker.split(':')[0]} + {args.backend.split(':')[0]})")


if __name__ == "__main__":
    main()
