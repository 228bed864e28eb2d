"""Concurrency-limit scenarios shared by the SQLite and Kafka + Redis tests (4 worker
processes running ``tests.apps.conc_app``)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from yadtq import states

from .helpers import wait_until
from .procs import WorkerProcess


def all_take_part(m: Any, count: int, timeout: float = 120) -> None:
    """Wait until ``count`` workers run tasks (on Kafka: the group has settled)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {sorted(seen)} ran tasks"
        seen.update(r.get(timeout=60) for r in [m.ping.delay() for _ in range(8 * count)])


def never_over_the_limit(m: Any, workers: int = 4) -> None:
    """18 tasks of 3 tenants (limit 2 each) on ``workers`` workers x 4: never more than 2
    of a tenant at once, counted from inside the tasks, while different tenants run side
    by side."""
    all_take_part(m, workers)
    results = [m.tenant_job.delay(t, n, 0.5) for n in range(6) for t in ("a", "b", "c")]
    assert sorted(r.get(timeout=180) for r in results) == sorted(list(range(6)) * 3)
    most = m.most()
    assert max(most[t] for t in "abc") <= m.LIMIT, most
    assert most["*"] > m.LIMIT, most  # different keys ran in parallel


def slot_freed_after_sigkill(m: Any, workers: list[WorkerProcess], tmp_path: Path,
                             within: float) -> float:
    """The holder of a slot is SIGKILLed: the task waiting for that slot runs once the
    worker is found dead. Returns the seconds from the kill to the waiting task's end."""
    marker = tmp_path / "hog-started"
    first = m.hog.delay("z", str(marker))
    wait_until(lambda: first.state == states.PROCESSING and marker.exists(), 120, 0.1)
    waiting = m.hog.delay("z", str(marker))
    wait_until(lambda: waiting.state == states.SCHEDULED, 120, 0.1)
    time.sleep(1.0)
    assert waiting.state == states.SCHEDULED  # waits while the slot is held
    victim = next(w for w in workers if w.name == first.worker)
    killed = time.monotonic()
    victim.signal(signal.SIGKILL)
    victim.wait(30)
    assert waiting.get(timeout=within) == "z"
    took = time.monotonic() - killed
    assert first.get(timeout=120) == "z"  # delivered again, and run (quickly) elsewhere
    return took
