"""Concurrency limits on Kafka with the backend on a real 3-primary Redis Cluster, with 3
real ``yadtq worker`` processes: each limit key's slots live in its own slot group, and
the holders' records are read from theirs (transports/redis/slots.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_topology import Topology

from ..worker import conc_scenarios as scenarios
from ..worker.procs import WorkerProcess, app_in_env, ready_workers, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.integration]
APP = "tests.apps.conc_app"
WORKERS = 3
UNRESPONSIVE = 5.0
#: librdkafka's session.timeout.ms as yadtq sets it: a SIGKILLed worker's partitions move then.
SESSION_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def on_cluster(kafka_bootstrap: str, redis_cluster: Topology,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[WorkerProcess], Path]]:
    tmp_path = tmp_path_factory.mktemp("conc-cluster")
    unique = uuid.uuid4().hex[:10]
    settings = {
        "default_queue": f"concrc-{unique}",
        "backend_options": json.dumps({"prefix": f"concrc-{unique}"}),
        "heartbeat_interval": "1",
        "worker_unresponsive_after": str(UNRESPONSIVE),
        "partitions": "4",
    }
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_cluster.url, tmp_path, **settings)
    env["YADTQ_TEST_GAUGE"] = str(tmp_path / "gauge.db")
    with app_in_env(APP, env) as module, \
            ready_workers(WORKERS, module, env, tmp_path, ["-c", "4"]) as workers:
        yield module, workers, tmp_path


@pytest.mark.timeout(300)
def test_never_more_than_the_limit_per_key_on_redis_cluster(on_cluster: Any) -> None:
    scenarios.never_over_the_limit(on_cluster[0], WORKERS)


@pytest.mark.timeout(300)
def test_a_slot_is_freed_when_its_worker_is_sigkilled_on_redis_cluster(on_cluster: Any) -> None:
    m, workers, tmp_path = on_cluster
    scenarios.slot_freed_after_sigkill(m, workers, tmp_path,
                                       within=max(UNRESPONSIVE, SESSION_TIMEOUT) + 30)
