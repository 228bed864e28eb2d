"""How cost grows: throughput and worker CPU per task against one dimension at a time.

    python3 benchmarks/scaling.py --broker kafka://127.0.0.1:9092 --backend redis://127.0.0.1:6379/0 \\
        [--tasks 1000,10000,100000] [--payloads 100,10000,1000000] [--workers 1,2,4] \\
        [--partitions 8,32,128] [--countdown 100000] [--backlog 1000000 --drain-limit 1200]
    python3 benchmarks/scaling.py --broker sqlite:////tmp/s.db --backend sqlite:////tmp/s.db --tasks 100000

Each figure is one run: N ``bench.sink(payload)`` tasks sent with ``app.send_many``
(``CHUNK`` calls at a time) to a fresh queue while the workers run (``yadtq worker -A
yadtq.benchapp -c 8`` processes, warmed up until each has run a task), then the time until every
result is stored and the workers' CPU (user + system, /proc, process trees) per task.
The base case is ``--base-tasks`` (1,000) tasks, 100-byte payloads, 1 worker, 8
partitions; each list varies one dimension.

- ``--countdown N`` sends N tasks due at one moment (after the send is over) and times
  from that moment until all are stored: the workers' schedulers move them to the queue.
- ``--backlog N`` sends N tasks with no worker running, then starts the workers and
  times from their start until all are stored (start-up and group join included). A
  backlog not drained within ``--drain-limit`` seconds is reported as the rate over what
  was stored by then (counted by each record's success time), marked "partial".
- Payloads above ``LARGE_PAYLOAD`` need Kafka's size limits raised: the run creates its
  topic itself with ``max.message.bytes`` and gives every client ``broker_options``
  ``{"message.max.bytes": ...}`` (what a user must do too; see docs/performance.md).

Results are checked in send order, ``WINDOW`` ids at a time with ``backend.states``;
task ids are kept as 16 raw bytes each (1M ids: 16 MB) and no ``AsyncResult`` outlives
its ``send_many`` chunk. Every run has its own namespace: on Redis its keys are deleted
at the end (SCAN by prefix, UNLINK) and results expire after ``--expires`` seconds
anyway; its Kafka queue is purged (the empty topic stays). Prints one Markdown table;
nothing here is asserted by tests (docs/performance.md quotes it with its command).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))
from runner import cpu_seconds, delete_namespace_keys, workers  # noqa: E402

#: Tasks per ``app.send_many`` call.
CHUNK = 10_000
#: Sent ids checked per pass; ``READ`` per backend call.
WINDOW = 2_000
READ = 1_000
#: Payloads above this need Kafka's size limits raised (librdkafka's ``message.max.bytes``
#: defaults to 1,000,000, the broker's to 1,048,588, and the envelope adds ~200 bytes).
LARGE_PAYLOAD = 512 * 1024
#: Head room above the payload for the envelope in the raised limits.
ENVELOPE_ROOM = 64 * 1024


@dataclass(frozen=True)
class Run:
    """One figure: what is varied and the run's parameters."""

    varied: str
    tasks: int
    payload: int = 100
    workers: int = 1
    partitions: int = 8
    mode: str = "live"  # "live", "countdown" or "backlog"


@dataclass
class Figures:
    run: Run
    stored: int
    seconds: float
    cpu: float
    partial: bool = False
    load: str = ""


class SentIds:
    """The ids of one run's tasks in send order, 16 raw bytes each in one bytearray."""

    def __init__(self) -> None:
        self._raw = bytearray()

    def __len__(self) -> int:
        return len(self._raw) // 16

    def add(self, task_ids: Iterator[str]) -> None:
        for task_id in task_ids:
            self._raw += bytes.fromhex(task_id)  # 32 hex digits (task_ids.new_task_id)

    def slice(self, start: int, end: int) -> list[str]:
        raw = self._raw
        return [raw[i * 16:i * 16 + 16].hex() for i in range(start, min(end, len(self)))]


class Waiter:
    """Waits until sent tasks are stored, checking them in send order a window at a time:
    the oldest unconfirmed ids (at most ``WINDOW``) are read with ``backend.states``, the
    confirmed ones dropped and the window refilled; it sleeps only when a pass confirmed
    less than half of it (the workers are behind), briefly once few are left."""

    def __init__(self, app: Any, sent: SentIds) -> None:
        self.app = app
        self.sent = sent
        self.cursor = 0
        self.pending: list[str] = []

    def wait(self, deadline: float) -> bool:
        """True once every task is stored; False at ``deadline`` (monotonic)."""
        total = len(self.sent)
        while True:
            if len(self.pending) < WINDOW and self.cursor < total:
                end = min(total, self.cursor + WINDOW - len(self.pending))
                self.pending += self.sent.slice(self.cursor, end)
                self.cursor = end
            if not self.pending:
                return True
            before = len(self.pending)
            self.pending = self._not_stored(self.pending)
            if not self.pending and self.cursor >= total:
                return True
            if time.monotonic() >= deadline:
                return False
            if before - len(self.pending) < before // 2:
                time.sleep(0.05 if len(self.pending) <= 500 else 0.25)

    def _not_stored(self, ids: list[str]) -> list[str]:
        left: list[str] = []
        for start in range(0, len(ids), READ):
            chunk = ids[start:start + READ]
            for task_id, state in zip(chunk, self.app.backend.states(chunk)):
                if state in ("failed", "revoked"):
                    raise RuntimeError(f"task {task_id} ended {state}")
                if state != "success":
                    left.append(task_id)
        return left

    def stored_by(self, when: float) -> int:
        """How many tasks were stored at or before ``when`` (the backend's clock): those
        confirmed so far plus those of the rest whose record says they succeeded by then."""
        count = self.cursor - len(self.pending)
        rest = [*self.pending]
        start = self.cursor
        while rest or start < len(self.sent):
            if len(rest) < READ:
                rest += self.sent.slice(start, start + READ)
                start += READ
            chunk, rest = rest[:READ], rest[READ:]
            for record in self.app.backend.get(chunk):
                if record is not None and record.state == "success":
                    done = record.timestamp("success")
                    if done is not None and done <= when:
                        count += 1
        return count


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def send(app: Any, sink: Any, body: bytes, count: int, eta: Optional[float] = None) -> SentIds:
    """``count`` sink tasks through ``app.send_many``, ``CHUNK`` at a time."""
    sent = SentIds()
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        sig = sink.s(body) if eta is None else sink.s(body).set(eta=eta)
        sent.add(r.id for r in app.send_many([sig] * n))
    return sent


def measure(args: argparse.Namespace, run: Run) -> Figures:
    """One run; returns its figures."""
    namespace = f"scale-{uuid.uuid4().hex[:8]}"
    queue = "sink"
    env = dict(os.environ, YADTQ_BROKER_URL=args.broker, YADTQ_BACKEND_URL=args.backend,
               YADTQ_NAMESPACE=namespace, YADTQ_DEFAULT_QUEUE=queue,
               YADTQ_PARTITIONS=str(run.partitions), YADTQ_RESULT_EXPIRES=str(args.expires))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    large = run.payload > LARGE_PAYLOAD and args.broker.startswith("kafka")
    limit = run.payload + ENVELOPE_ROOM
    if large:
        options = json.loads(env.get("YADTQ_BROKER_OPTIONS") or "{}")
        env["YADTQ_BROKER_OPTIONS"] = json.dumps(dict(options, **{"message.max.bytes": limit}))
    os.environ.update(env)
    from yadtq import YADTQ

    app = YADTQ("scale")  # the client: the same transports, namespace and queue as the workers
    sink = app.task(name="bench.sink")(_sink)
    cmd = [sys.executable, "-m", "yadtq.cli", "worker", "-A", "yadtq.benchapp", "-c", "8", "-l", "warning"]
    cmds = [[*cmd, "-n", f"{namespace}-{i}"] for i in range(run.workers)]
    body = os.urandom(run.payload // 2 + 1).hex().encode()[:run.payload]
    load = _loadavg()
    try:
        if large:
            _create_topic(app, queue, run.partitions, limit)
        if run.mode == "backlog":
            sent = send(app, sink, body, run.tasks)
            app.flush(600)
            load = _loadavg()
            cpu0 = 0.0  # the workers' start-up is part of the drain
            started = time.perf_counter()
        with workers(cmds, env) as procs:
            pids = [p.pid for p in procs]
            if run.mode != "backlog":
                _warm_up(app, sink, run.workers, args.timeout)
                load = _loadavg()
                cpu0 = cpu_seconds(pids)
                started = time.perf_counter()
                if run.mode == "countdown":
                    # Due once the send is over (at ~2,000 scheduled sends/s, loaded).
                    due = app.now() + 3.0 + run.tasks / 2000
                    sent = send(app, sink, body, run.tasks, eta=due)
                    app.flush(600)
                    late = app.now() - due
                    if late > 0:  # the figure then includes the rest of the send
                        print(f"note: the send ended {late:.1f} s after the tasks were due",
                              file=sys.stderr)
                    started = time.perf_counter() - late  # the moment they were due
                else:
                    sent = send(app, sink, body, run.tasks)
                    app.flush(600)
            limit_s = args.drain_limit if run.mode == "backlog" else args.timeout
            waiter = Waiter(app, sent)
            done = waiter.wait(time.monotonic() + limit_s)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pids) - cpu0
            ended = app.now()
        if done:
            stored = run.tasks
        elif run.mode == "backlog":
            stored = waiter.stored_by(ended)
        else:
            raise RuntimeError(f"{run.tasks - waiter.stored_by(ended)} tasks not done within "
                               f"{limit_s:g} s")
    finally:
        with suppress(Exception):  # never hide the run's own error
            app.purge(queue)
        app.close()
        if args.backend.startswith("redis://"):
            delete_namespace_keys(args.backend, namespace)
    return Figures(run, stored, elapsed, cpu, partial=not done, load=load)


def _warm_up(app: Any, sink: Any, count: int, timeout: float) -> None:
    """Send batches of 50 empty tasks until each of the ``count`` workers has run one:
    then all have joined the group and hold partitions, and no rebalance lands in the
    timed part (a worker joining late would move partitions in the middle of it)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        sent = send(app, sink, b"", 50)
        if not Waiter(app, sent).wait(deadline):
            raise RuntimeError(f"warm-up not done within {timeout:g} s")
        seen.update(r.worker for r in app.backend.get(sent.slice(0, 50)) if r is not None and r.worker)


def _create_topic(app: Any, queue: str, partitions: int, limit: int) -> None:
    """Create the queue's topic with ``max.message.bytes`` raised, as a user must for
    large payloads (yadtq creates task topics with the cluster's defaults)."""
    from confluent_kafka.admin import NewTopic

    topic = app.broker.naming.topic(queue)
    futures = app.broker.admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=app.settings.replication_factor,
                  config={"max.message.bytes": str(limit)})], request_timeout=30)
    futures[topic].result(60)


def _sink(payload: bytes) -> None:
    """The client's stand-in for ``yadtq.benchapp.sink`` (same name, never run here)."""


def plan(args: argparse.Namespace) -> list[Run]:
    """The runs: each list of the command line varies one dimension from the base case."""
    base = Run("tasks", args.base_tasks)
    runs = [replace(base, tasks=n) for n in args.tasks]
    # Large payloads: fewer tasks, at most ~100 MB moved per run.
    runs += [replace(base, varied="payload bytes", payload=n,
                     tasks=max(10, min(base.tasks, 100_000_000 // n)))
             for n in args.payloads if n != base.payload]
    runs += [replace(base, varied="workers", workers=n) for n in args.worker_counts if n != base.workers]
    runs += [replace(base, varied="partitions", partitions=n) for n in args.partitions
             if n != base.partitions and args.broker.startswith("kafka")]
    if args.countdown:
        runs.append(replace(base, varied="countdown, due at once", tasks=args.countdown, mode="countdown"))
    if args.backlog:
        runs.append(replace(base, varied="backlog drained", tasks=args.backlog,
                            workers=args.backlog_workers, mode="backlog"))
    return runs


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--base-tasks", type=int, default=1000, help="tasks of the base case (1000)")
    p.add_argument("--tasks", type=_ints, default=[1000, 10000], help="comma-separated; '' for none")
    p.add_argument("--payloads", type=_ints, default=[100, 10000])
    p.add_argument("--workers", dest="worker_counts", type=_ints, default=[1, 2])
    p.add_argument("--partitions", type=_ints, default=[8, 32])
    p.add_argument("--countdown", type=int, default=0, help="tasks due at once (0: skip)")
    p.add_argument("--backlog", type=int, default=0, help="tasks sent before the workers start (0: skip)")
    p.add_argument("--backlog-workers", type=int, default=1, help="worker processes draining the backlog")
    p.add_argument("--drain-limit", type=float, default=1200.0,
                   help="seconds the backlog may take; then the rate over what was stored")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds any other run may take")
    p.add_argument("--expires", type=float, default=3600.0, help="result_expires of the runs")
    args = p.parse_args(argv)
    print("| varied | tasks | payload B | workers | partitions | tasks/s | worker CPU us per task "
          "| load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for run in plan(args):
        _row(measure(args, run))
    return 0


def _row(f: Figures) -> None:
    r = f.run
    tasks = f"{f.stored:,} of {r.tasks:,} (partial, {f.seconds:.0f} s)" if f.partial else f"{r.tasks:,}"
    print(f"| {r.varied} | {tasks} | {r.payload:,} | {r.workers} | {r.partitions} "
          f"| {f.stored / f.seconds:,.0f} | {f.cpu / max(1, f.stored) * 1e6:,.0f} | {f.load} |", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
