"""One test, two stacks: the embedded SQLite transport, and real Kafka + Redis.

``stack`` gives the environment for real ``yadtq worker`` processes and the test
app module (``tests.apps.exec_app``) reloaded in this process on the same transport.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.worker.procs import worker_env

APP = "tests.apps.exec_app"
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "3"}


@dataclass
class Stack:
    name: str
    env: dict[str, str]
    module: ModuleType
    logdir: Path
    effects: Path

    def effect_lines(self, name: str) -> list[str]:
        path = self.effects / name
        return path.read_text().splitlines() if path.exists() else []


def _settings(request: pytest.FixtureRequest, unique: str, tmp_path: Path) -> tuple[str, str, dict[str, str]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'yadtq.db'}"
        return url, url, dict(FAST)
    kafka = request.getfixturevalue("kafka_bootstrap")
    redis_url = request.getfixturevalue("redis_url")
    settings = {**FAST, "default_queue": f"ex-{unique}", "partitions": "2",
                "backend_options": json.dumps({"prefix": f"ex-{unique}"})}
    return f"kafka://{kafka}", redis_url, settings


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.redis,
                                                               pytest.mark.integration])])
def stack(request: pytest.FixtureRequest, unique: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    broker, backend, settings = _settings(request, unique, tmp_path)
    effects = tmp_path / "effects"
    effects.mkdir()
    env = worker_env(broker, backend, effects, **settings)
    for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_SIDE_EFFECTS",
                *(f"YADTQ_{k.upper()}" for k in settings)):
        monkeypatch.setenv(key, env[key])
    module = importlib.reload(importlib.import_module(APP))
    try:
        yield Stack(request.param, env, module, tmp_path, effects)
    finally:
        module.app.close()
