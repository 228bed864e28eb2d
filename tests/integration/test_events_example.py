"""The events-stream example runs as documented, on Kafka and Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..worker.procs import ROOT, running_workers, worker_env

pytestmark = pytest.mark.slow


def test_events_example_prints_each_tasks_changes(kafka_bootstrap: str, redis_url: str,
                                                  tmp_path: Path) -> None:
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_url, tmp_path)
    with running_workers(1, "examples.events_app", env, tmp_path):
        done = subprocess.run([sys.executable, "examples/events_app.py"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "results: [0, 2, 4]"
    entries = [line.split() for line in lines[1:]]
    assert len(entries) == 6, lines
    ids = {task_id for _, _, task_id in entries}
    assert len(ids) == 3
    for task_id in ids:  # each task: processing, then success
        states = [state for state, name, tid in entries if tid == task_id]
        assert states == ["processing", "success"]
    assert {name for _, name, _ in entries} == {"examples.events_app.add"}
