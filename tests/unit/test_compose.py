"""docker-compose.yml is valid and runs Kafka (KRaft), Redis and scalable workers.

There is no Docker engine here: Debian's ``docker-compose`` validates and
normalises the file (``config``) without one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose not installed (apt-get install docker-compose; scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    proc = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = yaml.safe_load(proc.stdout)
    return config


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "redis", "worker", "client"}


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert "ZOOKEEPER" not in " ".join(env)


def test_worker_scales_and_uses_kafka_and_redis(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # --scale worker=3 needs no fixed container name and no host port
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][:2] == ["yadtq", "worker"]
    assert worker["environment"]["YADTQ_BROKER_URL"] == "kafka://kafka:9092"
    assert worker["environment"]["YADTQ_BACKEND_URL"] == "redis://redis:6379/0"
    assert set(worker["depends_on"]) == {"kafka", "redis"}


def test_scale_is_accepted(compose: dict[str, Any]) -> None:
    proc = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "up", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert "--scale" in proc.stdout


def test_client_submits_the_example_tasks(compose: dict[str, Any]) -> None:
    client = compose["services"]["client"]
    assert "examples/tasks.json" in client["command"]
    assert client["environment"]["YADTQ_BROKER_URL"] == "kafka://kafka:9092"
