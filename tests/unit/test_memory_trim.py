"""A worker hands freed memory back to the system once each time it goes quiet."""

from __future__ import annotations

import platform
import time

import pytest

from yadtq import YADTQ
from yadtq.worker import main as worker_main
from yadtq.worker.main import Worker
from yadtq.worker.memory import TrimWhenQuiet, malloc_trim


class Counts:
    def __init__(self) -> None:
        self.finished = 0
        self.running = 0
        self.trims = 0

    def trim(self) -> None:
        self.trims += 1


def test_it_trims_once_per_burst_only_when_nothing_finished_since_the_last_beat() -> None:
    counts = Counts()
    after_beat = TrimWhenQuiet(lambda: counts.finished, lambda: counts.running, counts.trim)
    after_beat()
    assert counts.trims == 0, "a worker that has done nothing has nothing to hand back"
    counts.finished = 5
    after_beat()
    assert counts.trims == 0, "tasks finished since the last beat: the worker is busy"
    after_beat()
    assert counts.trims == 1
    after_beat()
    after_beat()
    assert counts.trims == 1, "still quiet: nothing more to hand back"
    counts.finished, counts.running = 6, 1
    after_beat()
    after_beat()
    assert counts.trims == 1, "a task still runs"
    counts.running = 0
    after_beat()
    assert counts.trims == 2


def test_without_malloc_trim_it_does_nothing() -> None:
    counts = Counts()
    after_beat = TrimWhenQuiet(lambda: counts.finished, lambda: 0, None)
    counts.finished = 1
    after_beat()
    after_beat()
    assert counts.trims == 0


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's")
def test_glibc_has_malloc_trim() -> None:
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1 when memory was handed back


def test_a_worker_trims_after_its_tasks_are_done(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = Counts()
    monkeypatch.setattr(worker_main, "malloc_trim", lambda: counts.trim)
    app = YADTQ("trim", broker="memory://", backend="memory://", heartbeat_interval=0.05)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    worker = Worker(app, concurrency=2).start()
    try:
        time.sleep(0.3)
        assert counts.trims == 0, "no task has run yet"
        assert [add.delay(i, 1).get(timeout=10) for i in range(20)] == list(range(1, 21))
        deadline = time.monotonic() + 10
        while counts.trims == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counts.trims == 1
        time.sleep(0.3)
        assert counts.trims == 1, "quiet since: trimmed once"
    finally:
        worker.stop(timeout=10)
        app.close()
