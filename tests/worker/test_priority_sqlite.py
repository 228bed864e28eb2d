"""Priorities on the embedded SQLite transport, with a real ``yadtq worker`` process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from . import priority_scenarios as scenarios
from .procs import app_in_env, ready_workers, worker_env

pytestmark = pytest.mark.slow
APP = "tests.apps.priority_app"


@pytest.mark.timeout(300)
def test_high_priority_tasks_start_before_a_backlog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'yadtq.db'}"
    env = worker_env(url, url, tmp_path, heartbeat_interval="0.5")
    with app_in_env(APP, env) as m:

        @contextmanager
        def start_worker() -> Iterator[None]:
            with ready_workers(1, m, env, tmp_path, ["-c", "1"], timeout=60):
                yield

        scenarios.high_first_under_backlog(
            m, "default", start_worker, slack=0,
            levels={"0": scenarios.BACKLOG, "5": 3, "9": 3})
