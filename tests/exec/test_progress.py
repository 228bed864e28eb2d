"""Progress and custom states (DESIGN.md §13): read while the task runs, followed as it
changes, throttled, shown by the monitor; after the end the state is the final one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from yadtq import YADTQ, ConfigurationError, states
from yadtq.running import PROGRESS_INTERVAL
from yadtq.worker.main import Worker

from ..worker.helpers import wait_until
from ..worker.procs import ROOT, running_workers, wait_ready
from .conftest import APP, Stack


@pytest.mark.slow
def test_progress_is_read_while_the_task_runs(stack: Stack) -> None:
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir, ["-c", "2"]) as workers:
        wait_ready(workers, m.app.get_worker_status)
        result = m.steps.delay("p1", 0, 0.05)
        wait_until(lambda: result.progress is not None and result.progress[0] >= 3, timeout=30)
        assert result.state == "PROGRESS" and result.meta is not None and result.meta["total"] is None
        seen = result.progress
        wait_until(lambda: (result.progress or (0,))[0] > seen[0], timeout=30)  # it moves on
        shown = subprocess.run(
            [sys.executable, "-m", "yadtq.cli", "monitor", "-A", APP, "--json", "--interval", "0.1"],
            cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        running = [t for t in json.loads(shown.stdout)["processing"] if t["task_id"] == result.id]
        assert running and running[0]["custom_state"] == "PROGRESS" and running[0]["meta"]["done"] >= 3
        (stack.effects / "p1.go").touch()
        followed = [state for state, _ in result.follow(timeout=30)]
        done = result.get(timeout=30)
    assert followed[-1] == states.SUCCESS and result.state == states.SUCCESS
    assert done >= 3 and result.meta == {"done": done, "note": "last step"}
    assert result.progress == (done, None)


@pytest.mark.timeout(60)
def test_progress_is_throttled() -> None:
    app = YADTQ("throttle", broker="memory://", backend="memory://")
    writes: list[int] = []
    store = app.backend.record_progress

    def counting(updates: Any) -> None:
        writes.append(len(updates))
        store(updates)

    app.backend.record_progress = counting  # type: ignore[method-assign]

    @app.task(bind=True)
    def chatty(self: Any, seconds: float) -> int:
        made = 0
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            made += 1
            self.progress(made, None)
        return made

    worker = Worker(app, concurrency=1).start()
    try:
        started = time.monotonic()
        made = chatty.delay(2.5).get(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        worker.stop(10)
        app.close()
    assert made > 10_000, made  # reporting is cheap for the task...
    assert 1 <= len(writes) <= elapsed / PROGRESS_INTERVAL + 2, writes  # ...and the backend


def test_update_state_outside_a_task_is_an_error() -> None:
    app = YADTQ("outside", broker="memory://", backend="memory://")

    @app.task(bind=True)
    def bound(self: Any) -> None:
        self.progress(1, 2)

    with pytest.raises(ConfigurationError, match="only inside a running task"):
        bound()
