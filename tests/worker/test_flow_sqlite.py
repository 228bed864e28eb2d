"""Flow control on the embedded SQLite transport, with real ``yadtq worker`` processes."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import flow_scenarios as scenarios
from .procs import running_workers, wait_ready, worker_env

pytestmark = pytest.mark.slow
APP = "tests.apps.flow_app"


@pytest.fixture
def m(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'yadtq.db'}"
    env = worker_env(url, url, tmp_path, heartbeat_interval="0.5")
    env["YADTQ_TEST_RATE"] = "60/m"
    with pytest.MonkeyPatch.context() as patch:
        for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_RATE",
                    "YADTQ_HEARTBEAT_INTERVAL"):
            patch.setenv(key, env[key])
        module = importlib.reload(importlib.import_module(APP))
        try:
            with running_workers(4, APP, env, tmp_path, ["-c", "2"]) as workers:
                wait_ready(workers, module.app.get_worker_status, timeout=60)
                yield module
        finally:
            module.app.close()


@pytest.mark.timeout(300)
def test_rate_limit_is_cluster_wide_and_accurate_with_4_workers(m: Any) -> None:
    scenarios.rate_limit_is_accurate(m)
