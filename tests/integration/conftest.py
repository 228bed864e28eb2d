"""Kafka + Redis worker tests: real servers, real ``yadtq worker`` processes."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from yadtq import YADTQ
from yadtq.transports.base import Message

from ..worker.procs import worker_env

APP = "tests.apps.kafka_app"


class Cluster:
    """One test's view of the servers: env for workers, a client app, Redis counters."""

    def __init__(self, env: dict[str, str], app: YADTQ, module: Any, redis_url: str,
                 counters: str, logdir: Path) -> None:
        self.env = env
        self.app = app
        self.module = module
        self.redis = redis.Redis.from_url(redis_url)
        self.counters = counters
        self.logdir = logdir
        self.queue = app.settings.default_queue

    def counter(self, name: str) -> int:
        value = self.redis.get(f"{self.counters}:{name}")
        return int(value) if value is not None else 0

    def publish_raw(self, body: bytes) -> None:
        self.app.broker.publish([Message(self.queue, body)])
        self.app.flush(10)


@pytest.fixture
def cluster(kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    settings = {
        "default_queue": f"it-{unique}",
        "backend_options": json.dumps({"prefix": f"it-{unique}"}),
        "heartbeat_interval": "1",
        "partitions": "4",
    }
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_url, tmp_path, **settings)
    env["YADTQ_TEST_REDIS"] = redis_url
    env["YADTQ_TEST_COUNTERS"] = f"it-{unique}:counters"
    for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_REDIS", "YADTQ_TEST_COUNTERS",
                *(f"YADTQ_{k.upper()}" for k in settings)):
        monkeypatch.setenv(key, env[key])
    module = importlib.reload(importlib.import_module(APP))
    cluster = Cluster(env, module.app, module, redis_url, env["YADTQ_TEST_COUNTERS"], tmp_path)
    try:
        yield cluster
    finally:
        module.app.close()
        cluster.redis.close()
