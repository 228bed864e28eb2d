"""Fixtures for the transport contract: every broker and backend, built the same way.

``broker`` and ``backend`` are parametrized over the transports; ``broker_factory``
and ``backend_factory`` build more with changed settings. Kafka and Redis need
their servers (see tests/conftest.py) and a transport module that imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from yadtq.settings import load_settings
from yadtq.transports.base import Broker, ResultBackend, create_backend, create_broker

ROOT = Path(__file__).resolve().parents[2]

BROKERS = ["memory", "sqlite", pytest.param("kafka", marks=pytest.mark.kafka)]
BACKENDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis),
            pytest.param("redis-cluster", marks=pytest.mark.redis)]

#: The SQLite backend's fallback re-read in ``wait`` is set this long in the
#: contract, so a prompt wake-up can only come from a notification.
SQLITE_WAIT_RECHECK = 30.0


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def queue_name(unique: str) -> Callable[[str], str]:
    """Queue (Kafka topic) names unique to one test: ``queue_name("a")``."""

    def name(suffix: str) -> str:
        return f"yadtq-test-{suffix}-{unique}"

    return name


@pytest.fixture
def broker_url(broker_kind: str, request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if broker_kind == "memory":
        return "memory://"
    if broker_kind == "sqlite":
        return sqlite_url
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    pytest.importorskip("yadtq.transports.kafka")
    return f"kafka://{bootstrap}"


@pytest.fixture
def backend_url(backend_kind: str, request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if backend_kind == "memory":
        return "memory://"
    if backend_kind == "sqlite":
        return sqlite_url
    if backend_kind == "redis-cluster":
        url = str(request.getfixturevalue("redis_cluster").url)
    else:
        url = str(request.getfixturevalue("redis_url"))
    pytest.importorskip("yadtq.transports.redis")
    return url


@pytest.fixture
def broker_factory(broker_kind: str, broker_url: str) -> Iterator[Callable[..., Broker]]:
    """Builds brokers on the test's transport (``memory://`` ones are independent)."""
    made: list[Broker] = []

    def make(**overrides: Any) -> Broker:
        if broker_kind == "kafka":
            overrides.setdefault("partitions", 2)
        settings = load_settings(broker=broker_url, backend="memory://", environ={}, **overrides)
        broker = create_broker(broker_url, settings)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def backend_factory(backend_kind: str, backend_url: str,
                    unique: str) -> Iterator[Callable[..., ResultBackend]]:
    """Builds backends on the test's transport, sharing one store (except ``memory://``)."""
    made: list[ResultBackend] = []

    def make(**overrides: Any) -> ResultBackend:
        options = dict(overrides.pop("backend_options", {}))
        if backend_kind.startswith("redis"):
            options.setdefault("prefix", f"yadtq-test-{unique}")
        if backend_kind == "sqlite":
            options.setdefault("wait_recheck", SQLITE_WAIT_RECHECK)
        settings = load_settings(broker="memory://", backend=backend_url, environ={},
                                 backend_options=options, **overrides)
        backend = create_backend(backend_url, settings)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend_peers(backend_kind: str, backend_factory: Callable[..., ResultBackend],
                  ) -> Callable[[int], list[ResultBackend]]:
    """``n`` backends on one store, as separate processes would have (one for memory://)."""

    def make(count: int) -> list[ResultBackend]:
        if backend_kind == "memory":
            return [backend_factory()] * count
        return [backend_factory() for _ in range(count)]

    return make


@pytest.fixture
def broker(broker_factory: Callable[..., Broker]) -> Broker:
    return broker_factory()


@pytest.fixture
def backend(backend_factory: Callable[..., ResultBackend]) -> ResultBackend:
    return backend_factory()


@pytest.fixture
def python_process() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts ``python -c code *args`` with text pipes; killed and reaped at teardown."""
    started: list[subprocess.Popen[str]] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    def start(code: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=str(ROOT), env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()
