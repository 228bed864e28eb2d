"""Benchmarks behind ``yadtq bench``: submit rate, end-to-end throughput, round trip.

Workers are real ``yadtq worker`` processes on the transports given, consuming a
queue of their own, so a run measures the whole path a user's task takes.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from .exceptions import YADTQError

logger = logging.getLogger(__name__)

APP_PATH = "yadtq.benchapp"


@dataclass
class BenchReport:
    """What one benchmark run measured."""

    broker: str
    backend: str
    tasks: int
    workers: int
    concurrency: int
    pool: str
    delay_per_s: float = 0.0
    end_to_end_per_s: float = 0.0
    round_trip_p50_ms: float = 0.0
    round_trip_p99_ms: float = 0.0
    idle_worker_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def _workers(
    count: int, concurrency: int, pool: str, env: dict[str, str]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "yadtq.cli", "worker", "-A", APP_PATH, "-c", str(concurrency),
             "--pool", pool, "-l", "warning", "-n", f"bench-{os.getpid()}-{n}"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        for n in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_all(app: Any, ids: Sequence[str], timeout: float) -> None:
    """Wait until every task is ready: block on the last, then check the rest in batches."""
    from .states import READY_STATES

    app.AsyncResult(ids[-1]).get(timeout=timeout, propagate=False)
    pending = list(ids)
    deadline = time.monotonic() + timeout
    while pending:
        records = []
        for start in range(0, len(pending), 5000):
            records.extend(app.backend.get(pending[start:start + 5000]))
        pending = [i for i, r in zip(pending, records) if r is None or r.state not in READY_STATES]
        if pending:
            if time.monotonic() > deadline:
                raise YADTQError(f"{len(pending)} tasks unfinished after {timeout} s")
            app.AsyncResult(pending[0]).get(timeout=max(0.1, deadline - time.monotonic()),
                                            propagate=False)


def run_bench(*, broker: str, backend: str, tasks: int = 20_000, workers: int = 2,
              concurrency: int = 8, pool: str = "threads", latency_samples: int = 1000,
              progress: Optional[Callable[[str], None]] = None) -> BenchReport:
    """Measure ``.delay()`` rate, end-to-end throughput and round trip on these transports."""
    say = progress or (lambda message: None)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, YADTQ_BROKER_URL=broker, YADTQ_BACKEND_URL=backend,
               YADTQ_DEFAULT_QUEUE=queue, YADTQ_HEARTBEAT_INTERVAL="1")
    saved = {k: os.environ.get(k) for k in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_DEFAULT_QUEUE")}
    os.environ.update(YADTQ_BROKER_URL=broker, YADTQ_BACKEND_URL=backend, YADTQ_DEFAULT_QUEUE=queue)
    try:
        from . import benchapp

        app = benchapp.app.__class__("bench")  # fresh settings from the environment above
        app.tasks = benchapp.app.tasks
        report = BenchReport(broker, backend, tasks, workers, concurrency, pool)

        say(f"submitting {tasks} no-op tasks with no worker running")
        started = time.perf_counter()
        ids = [app.send_task("bench.noop").id for _ in range(tasks)]
        app.flush(60)
        report.delay_per_s = tasks / (time.perf_counter() - started)

        say(f"starting {workers} workers ({pool} x{concurrency}) and running them")
        with _workers(workers, concurrency, pool, env) as procs:
            started = time.perf_counter()
            _wait_all(app, ids, timeout=max(120.0, tasks / 100))
            drain = time.perf_counter() - started
            say("measuring submit-and-run end to end with workers running")
            ids = []
            started = time.perf_counter()
            ids = [app.send_task("bench.noop").id for _ in range(tasks)]
            app.flush(60)
            _wait_all(app, ids, timeout=max(120.0, tasks / 100))
            report.end_to_end_per_s = tasks / (time.perf_counter() - started)
            report.notes.append(f"draining a {tasks}-task backlog (incl. worker start-up) took {drain:.2f} s")

            say(f"measuring round trip over {latency_samples} sequential add.delay(2, 3).get()")
            samples = []
            for _ in range(latency_samples):
                t0 = time.perf_counter()
                if app.send_task("bench.add", (2, 3)).get(timeout=30) != 5:
                    raise YADTQError("bench.add returned a wrong result")
                samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()
            report.round_trip_p50_ms = statistics.median(samples)
            report.round_trip_p99_ms = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            say("letting workers idle for the RSS reading")
            time.sleep(2)
            report.idle_worker_rss_mb = max(_rss_mb(p.pid) for p in procs)
        app.purge(queue)
        app.close()
        return report
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
