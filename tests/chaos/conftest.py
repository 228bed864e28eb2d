"""Fixtures of the fault suite.

The scenarios stop, kill and restart servers, so they run against servers of
their own (tests/chaos/servers.py: started once per session on free ports and
killed by pid at the end, also on failure), never the shared ones. The ledger of
executions lives on the suite's ordinary Redis (``YADTQ_TEST_REDIS``), which no
scenario touches, so it survives every fault.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import redis

from tests.chaos.harness import Fleet, Ledger
from tests.chaos.servers import KafkaCluster, RedisServer, kafka_lib

APP = "tests.apps.chaos_app"


@pytest.fixture(scope="session")
def chaos_lib() -> Path:
    return kafka_lib()


@pytest.fixture(scope="session")
def chaos_kafka(chaos_lib: Path) -> Iterator[KafkaCluster]:
    """A single-node Kafka that scenarios may stop and start (restore it before returning)."""
    cluster = KafkaCluster(1, lib=chaos_lib)
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def chaos_redis() -> Iterator[RedisServer]:
    """A Redis with AOF (fsync always) that scenarios may restart."""
    server = RedisServer(aof=True)
    try:
        yield server.start()
    finally:
        server.close()


class Rig:
    """One scenario: env for workers, the client app, the ledger, the fleet."""

    def __init__(self, env: dict[str, str], module: Any, ledger: Ledger, fleet: Fleet, queue: str) -> None:
        self.env = env
        self.module = module
        self.app = module.app
        self.ledger = ledger
        self.fleet = fleet
        self.queue = queue


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RigFactory]:
    """``rig(kafka_bootstrap, backend_url, **settings)`` -> a :class:`Rig` with a unique
    queue, backend prefix and ledger key; its workers are stopped by pid at the end."""
    made: list[tuple[Rig, Any]] = []

    def make(bootstrap: str, backend: str, worker_args: tuple[str, ...] = ("-c", "4"),
             broker: Optional[str] = None, **settings: str) -> Rig:
        unique = uuid.uuid4().hex[:10]
        values = {
            "default_queue": f"chaos-{unique}",
            "backend_options": json.dumps({"prefix": f"chaos-{unique}"}),
            "heartbeat_interval": "1",
            "partitions": "6",
            **settings,
        }
        env = dict(os.environ)
        env.update({f"YADTQ_{k.upper()}": v for k, v in values.items()})
        env.update({
            "YADTQ_BROKER_URL": broker or f"kafka://{bootstrap}",
            "YADTQ_BACKEND_URL": backend,
            "YADTQ_CHAOS_LEDGER_REDIS": redis_url,
            "YADTQ_CHAOS_LEDGER": f"chaos-ledger:{unique}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH")])),
        })
        for key, value in env.items():
            if key.startswith("YADTQ_"):
                monkeypatch.setenv(key, value)
        module = importlib.reload(importlib.import_module(APP))
        client = redis.Redis.from_url(redis_url)
        logdir = tmp_path / unique
        logdir.mkdir()
        fleet = Fleet(APP, env, logdir, worker_args)
        made_rig = Rig(env, module, Ledger(client, env["YADTQ_CHAOS_LEDGER"]), fleet, values["default_queue"])
        made.append((made_rig, client))
        return made_rig

    try:
        yield make
    finally:
        for made_rig, client in made:
            made_rig.fleet.close()
            try:
                made_rig.app.close()
            finally:
                client.delete(made_rig.ledger.key)
                client.close()
