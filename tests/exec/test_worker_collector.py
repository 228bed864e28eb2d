"""A real ``yadtq worker`` tunes the garbage collector of its process (worker/collector.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yadtq.worker import collector

from ..worker.procs import app_in_env, running_workers, wait_ready, worker_env
from .conftest import APP


@pytest.mark.timeout(90)
def test_the_worker_command_tunes_its_process_and_tasks_see_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'yadtq.db'}"
    env = worker_env(url, url, tmp_path)
    with app_in_env(APP, env) as module, running_workers(1, APP, env, tmp_path) as workers:
        wait_ready(workers, module.app.get_worker_status)
        frozen, young, middle, old = module.collector_state.delay().get(timeout=30)
    assert frozen > 1000  # the modules, the app and the clients loaded before it served
    assert (young, middle, old) == (collector.YOUNG_THRESHOLD, collector.OLDER_THRESHOLD,
                                    collector.OLDER_THRESHOLD)
