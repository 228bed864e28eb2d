"""Flow control on Kafka + Redis, with real ``yadtq worker`` processes."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..worker import flow_scenarios as scenarios
from ..worker.procs import running_workers, wait_ready, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.integration]
APP = "tests.apps.flow_app"


@pytest.fixture
def m(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    unique = uuid.uuid4().hex[:10]
    settings = {
        "default_queue": f"flow-{unique}",
        "backend_options": json.dumps({"prefix": f"flow-{unique}"}),
        "heartbeat_interval": "1",
        "partitions": "4",
    }
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_url, tmp_path, **settings)
    env["YADTQ_TEST_RATE"] = "60/m"
    with pytest.MonkeyPatch.context() as patch:
        for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_RATE",
                    *(f"YADTQ_{k.upper()}" for k in settings)):
            patch.setenv(key, env[key])
        module = importlib.reload(importlib.import_module(APP))
        try:
            with running_workers(4, APP, env, tmp_path, ["-c", "2"]) as workers:
                wait_ready(workers, module.app.get_worker_status, timeout=90)
                yield module
        finally:
            module.app.close()


@pytest.mark.timeout(300)
def test_rate_limit_is_cluster_wide_and_accurate_with_4_workers(m: Any) -> None:
    scenarios.rate_limit_is_accurate(m)
