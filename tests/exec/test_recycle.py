"""``--max-tasks-per-child`` and ``--max-memory-per-child``: process-pool children are
replaced between tasks, never in the middle of one, and no task is lost."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from ..worker.procs import ROOT, running_workers, wait_ready
from .conftest import APP, Stack

pytestmark = pytest.mark.slow


def test_a_child_is_replaced_after_n_tasks(stack: Stack) -> None:
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir,
                         ["--pool", "processes", "-c", "2", "--max-tasks-per-child", "2"]) as workers:
        wait_ready(workers, m.app.get_worker_status)
        results = [m.pid_of.delay(n) for n in range(8)]
        pids = [r.get(timeout=60) for r in results]
    per_child = Counter(pids)
    assert sum(per_child.values()) == 8  # none lost
    assert max(per_child.values()) <= 2 and len(per_child) >= 4, per_child
    ran = [line.split() for line in stack.effect_lines("pid_of")]
    assert sorted(int(n) for n, _ in ran) == list(range(8))  # each ran exactly once
    assert "replacing pool child" in workers[0].log()


def test_a_child_is_replaced_once_its_memory_grows(stack: Stack) -> None:
    if stack.name == "kafka":
        pytest.skip("recycling is the pool's; the task-count case runs on Kafka + Redis")
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir,
                         ["--pool", "processes", "-c", "1", "--max-memory-per-child", "160"]) as workers:
        wait_ready(workers, m.app.get_worker_status)
        pids = [m.hog.delay(50).get(timeout=60) for _ in range(8)]  # one at a time
    per_child = Counter(pids)
    # A child starts well under 160 MB and grows 50 MB a task: it is replaced after a few.
    assert len(per_child) >= 2 and max(per_child.values()) <= 4, per_child
    assert "--max-memory-per-child 160" in workers[0].log()


def test_recycling_options_need_the_process_pool(stack: Stack) -> None:
    if stack.name == "kafka":
        pytest.skip("a command-line check")
    done = subprocess.run([sys.executable, "-m", "yadtq.cli", "worker", "-A", APP,
                           "--max-tasks-per-child", "5"], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: --max-tasks-per-child and --max-memory-per-child need --pool processes")
