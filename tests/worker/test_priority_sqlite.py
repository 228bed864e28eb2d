"""Priorities on the embedded SQLite transport, with a real ``yadtq worker`` process."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from . import priority_scenarios as scenarios
from .procs import running_workers, wait_ready, worker_env

pytestmark = pytest.mark.slow
APP = "tests.apps.priority_app"


@pytest.mark.timeout(300)
def test_high_priority_tasks_start_before_a_backlog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'yadtq.db'}"
    env = worker_env(url, url, tmp_path, heartbeat_interval="0.5")
    with pytest.MonkeyPatch.context() as patch:
        for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL"):
            patch.setenv(key, env[key])
        m: Any = importlib.reload(importlib.import_module(APP))

        @contextmanager
        def start_worker() -> Iterator[None]:
            with running_workers(1, APP, env, tmp_path, ["-c", "1"]) as workers:
                wait_ready(workers, m.app.get_worker_status, timeout=60)
                yield

        try:
            scenarios.high_first_under_backlog(
                m, "default", start_worker, slack=0,
                levels={"0": scenarios.BACKLOG, "5": 3, "9": 3})
        finally:
            m.app.close()
