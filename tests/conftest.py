"""Shared fixtures: apps on each transport, and the real Kafka and Redis servers.

Server fixtures read ``YADTQ_TEST_KAFKA`` (host:port) and ``YADTQ_TEST_REDIS``
(a redis:// URL), which ``scripts/with-services.sh`` sets after starting both.
Without them a test that needs a server is skipped, except under CI (``CI`` set),
where it fails: CI must never pass by skipping the real servers.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # examples/ and tests/apps/ import by path

from tests.redis_topology import Topology, available  # noqa: E402 - needs ROOT on sys.path
from tests.watchdog import pytest_runtest_protocol  # noqa: E402, F401 - a hook, found by name


def _missing(what: str, variable: str) -> None:
    message = f"{what} not configured: set {variable} (scripts/with-services.sh does)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable real Redis server's URL."""
    url = os.environ.get("YADTQ_TEST_REDIS")
    if not url:
        _missing("Redis", "YADTQ_TEST_REDIS")
    parts = urlsplit(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
        _missing(f"Redis at {url} unreachable;", "YADTQ_TEST_REDIS")
    return url  # type: ignore[return-value]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A reachable real Kafka broker's host:port."""
    address = os.environ.get("YADTQ_TEST_KAFKA")
    if not address:
        _missing("Kafka", "YADTQ_TEST_KAFKA")
    host, _, port = address.partition(":")  # type: ignore[union-attr]
    if not _reachable(host, int(port or 9092)):
        _missing(f"Kafka at {address} unreachable;", "YADTQ_TEST_KAFKA")
    return address  # type: ignore[return-value]


def _topology(kind: str) -> Iterator[Topology]:
    if not available():
        _missing("redis-server/redis-cli", "PATH (scripts/services.sh install)")
    started = Topology(kind)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Topology]:
    """A Redis Cluster of three primaries with one replica each (scripts/redis-cluster.sh)."""
    yield from _topology("cluster")


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[Topology]:
    """A primary, a replica and three Sentinels (service ``yadtq``)."""
    yield from _topology("sentinel")


@pytest.fixture
def unique() -> str:
    """A short unique name for queues, topics and key prefixes of one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite database URL for one test."""
    yield f"sqlite:///{tmp_path / 'yadtq.db'}"
