"""Concurrency limits on the embedded SQLite transport, with 4 real ``yadtq worker`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import conc_scenarios as scenarios
from .procs import WorkerProcess, app_in_env, ready_workers, worker_env

pytestmark = pytest.mark.slow
APP = "tests.apps.conc_app"
UNRESPONSIVE = 3.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[WorkerProcess], Path]]:
    tmp_path = tmp_path_factory.mktemp("conc")
    url = f"sqlite:///{tmp_path / 'yadtq.db'}"
    env = worker_env(url, url, tmp_path, heartbeat_interval="0.5",
                     worker_unresponsive_after=str(UNRESPONSIVE), visibility_timeout="6")
    env["YADTQ_TEST_GAUGE"] = str(tmp_path / "gauge.db")
    with app_in_env(APP, env) as module, \
            ready_workers(4, module, env, tmp_path, ["-c", "4"], timeout=60) as workers:
        yield module, workers, tmp_path

@pytest.mark.timeout(300)
def test_never_more_than_the_limit_per_key_with_4_workers(cluster: Any) -> None:
    scenarios.never_over_the_limit(cluster[0])


@pytest.mark.timeout(300)
def test_a_slot_is_freed_when_its_worker_is_sigkilled(cluster: Any) -> None:
    m, workers, tmp_path = cluster
    scenarios.slot_freed_after_sigkill(m, workers, tmp_path, within=UNRESPONSIVE + 30)
