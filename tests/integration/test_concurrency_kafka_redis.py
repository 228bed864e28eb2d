"""Concurrency limits on Kafka + Redis with real ``yadtq worker`` processes: 4 on one
Redis, and 3 on a real 3-primary Redis Cluster, where each limit key's slots live in
its own slot group and the holders' records are read from theirs
(transports/redis/slots.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..worker import conc_scenarios as scenarios
from ..worker.procs import WorkerProcess, app_in_env, ready_workers, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.integration]
APP = "tests.apps.conc_app"
UNRESPONSIVE = 5.0
#: librdkafka's session.timeout.ms as yadtq sets it: a SIGKILLed worker's partitions move then.
SESSION_TIMEOUT = 10.0
#: Workers per backend: fewer on the cluster, whose six servers share the machine too.
WORKERS = {"redis": 4, "redis-cluster": 3}


@pytest.fixture(scope="module", params=sorted(WORKERS))
def cluster(request: pytest.FixtureRequest, kafka_bootstrap: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[WorkerProcess], Path]]:
    backend_url = (request.getfixturevalue("redis_cluster").url if request.param == "redis-cluster"
                   else request.getfixturevalue("redis_url"))
    tmp_path = tmp_path_factory.mktemp("conc")
    unique = uuid.uuid4().hex[:10]
    settings = {
        "default_queue": f"conc-{unique}",
        "backend_options": json.dumps({"prefix": f"conc-{unique}"}),
        "heartbeat_interval": "1",
        "worker_unresponsive_after": str(UNRESPONSIVE),
        "partitions": "4",
    }
    env = worker_env(f"kafka://{kafka_bootstrap}", backend_url, tmp_path, **settings)
    env["YADTQ_TEST_GAUGE"] = str(tmp_path / "gauge.db")
    with app_in_env(APP, env) as module, \
            ready_workers(WORKERS[request.param], module, env, tmp_path, ["-c", "4"]) as workers:
        yield module, workers, tmp_path


@pytest.mark.timeout(300)
def test_never_more_than_the_limit_per_key(cluster: Any) -> None:
    scenarios.never_over_the_limit(cluster[0], len(cluster[1]))


@pytest.mark.timeout(300)
def test_a_slot_is_freed_when_its_worker_is_sigkilled(cluster: Any) -> None:
    m, workers, tmp_path = cluster
    scenarios.slot_freed_after_sigkill(m, workers, tmp_path,
                                       within=max(UNRESPONSIVE, SESSION_TIMEOUT) + 30)
