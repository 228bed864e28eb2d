"""Priorities on Kafka + Redis (lanes), with a real ``yadtq worker`` process."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..worker import priority_scenarios as scenarios
from ..worker.procs import app_in_env, ready_workers, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.integration]
APP = "tests.apps.priority_app"


@pytest.mark.timeout(300)
def test_high_priority_lanes_start_before_a_backlog(kafka_bootstrap: str, redis_url: str,
                                                    tmp_path: Path) -> None:
    unique = uuid.uuid4().hex[:10]
    queue = f"prio-{unique}"
    settings = {"default_queue": queue, "backend_options": json.dumps({"prefix": f"prio-{unique}"}),
                "heartbeat_interval": "1", "partitions": "4"}
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_url, tmp_path, **settings)
    with app_in_env(APP, env) as m:

        @contextmanager
        def start_worker() -> Iterator[None]:
            with ready_workers(1, m, env, tmp_path, ["-c", "1"]):
                yield

        # Levels 4-6 and 7-9 travel on lane topics of their own; within a lane the
        # order is arrival order, and the first fetch may hand out a task or two of
        # the backlog before the high lanes' first fetch response is in.
        scenarios.high_first_under_backlog(
            m, queue, start_worker, slack=4,
            levels={"0-3": scenarios.BACKLOG, "4-6": 3, "7-9": 3})
        deadline = time.monotonic() + 30  # every lane's offsets get committed
        while m.app.broker.depth(queue) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert m.app.broker.depth(queue) == 0
