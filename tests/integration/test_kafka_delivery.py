"""What becomes of a sent task between ``.delay()`` and the broker, on real Kafka and Redis:
refusals reach ``get()`` at once, a script exiting right after ``.delay()`` loses nothing,
an unreachable broker at client start is one clear error."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from yadtq import BrokerUnavailable, states

from ..worker.procs import ROOT
from .conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def topic_size(bootstrap: str, topic: str) -> int:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "size-probe"})
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in partitions)
    finally:
        probe.close()


SCRIPT = """
import sys
from tests.apps import kafka_app
for i in range(int(sys.argv[1])):
    kafka_app.add.delay(i, i)
"""  # and exits at once, with messages still in the producer's queue


def test_a_script_exiting_right_after_delay_loses_nothing(cluster: Cluster, kafka_bootstrap: str) -> None:
    cluster.app.broker.ensure_topic(f"yadtq.{cluster.queue}")  # type: ignore[attr-defined]
    env = dict(cluster.env, YADTQ_BROKER_OPTIONS=json.dumps({"linger.ms": 2000}))  # held back 2 s
    done = subprocess.run([sys.executable, "-c", SCRIPT, "300"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert topic_size(kafka_bootstrap, f"yadtq.{cluster.queue}") == 300


def test_a_refused_message_fails_get_at_once(cluster: Cluster, kafka_bootstrap: str) -> None:
    topic = f"yadtq.{cluster.queue}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                  config={"max.message.bytes": "1024"})])[topic].result(30)
    result = cluster.module.add.delay("x" * 4000, "y")  # accepted locally, refused by the broker
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="not delivered"):
        result.get(timeout=60)
    assert time.monotonic() - started < 45  # known refused: no waiting out the timeout
    assert result.state == states.FAILED
    fresh = cluster.app.AsyncResult(result.id)  # a handle that never saw the refusal locally
    with pytest.raises(BrokerUnavailable):
        fresh.get(timeout=10)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_a_client_whose_kafka_does_not_answer_gets_one_line(cluster: Cluster, silent_port: int) -> None:
    env: dict[str, Any] = dict(cluster.env, YADTQ_BROKER_URL=f"kafka://127.0.0.1:{silent_port}")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "yadtq.cli", "submit", "-A", "tests.apps.kafka_app",
                           "add", "1", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=90)
    assert time.monotonic() - started < 45  # bounded (about 10 s), not a hang
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("Error: "), done.stderr
