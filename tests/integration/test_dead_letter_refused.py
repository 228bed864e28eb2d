"""A dead-letter topic that refuses a message for good (not for its size, not an outage)
must not hold the worker for ever: the message is given up after a bounded number of
tries, logged once, recorded failed with the refusal, and its offset is passed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from yadtq import YADTQ
from yadtq.transports.base import Message
from yadtq.worker.main import Worker

from ..worker.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.timeout(120)]


@pytest.fixture
def compacted_dlq(kafka_bootstrap: str) -> Iterator[str]:
    """A namespace of this test's own whose dead-letter topic refuses messages without a
    key (a compacted topic answers them INVALID_RECORD); yields the namespace."""
    namespace = f"refusing-{uuid.uuid4().hex[:8]}"
    topic = f"{namespace}.dlq"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                                config={"cleanup.policy": "compact"})]).values():
        future.result(30)
    try:
        yield namespace
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result(30)


def test_a_dead_letter_refused_for_good_is_given_up_logged_recorded_and_passed(
        kafka_bootstrap: str, compacted_dlq: str, caplog: pytest.LogCaptureFixture) -> None:
    queue = f"refused-{uuid.uuid4().hex[:8]}"
    app = YADTQ("refused", broker=f"kafka://{kafka_bootstrap}", backend="memory://", default_queue=queue,
                partitions=1, heartbeat_interval=0.5, namespace=compacted_dlq)

    @app.task
    def ping() -> str:
        return "pong"

    caplog.set_level(logging.INFO)
    app.broker.publish([Message(queue, b"\xc1 not a task", None)])
    worker = Worker(app, name="refused-w", concurrency=2).start()
    try:
        assert ping.delay().get(timeout=60) == "pong", "the worker was held by the refused dead letter"
        failures = app.backend.snapshot().recent_failures
        given_up = [f for f in failures if f.task_id.startswith("dlq-")]
        assert len(given_up) == 1, failures
        assert "dead-letter queue refused it" in (given_up[0].error_message or ""), given_up[0]
        dropped = [r for r in caplog.records if "not dead-lettered, dropped" in r.getMessage()]
        assert len(dropped) == 1 and "INVALID_RECORD" in dropped[0].getMessage(), dropped
        assert "body (12 bytes" in dropped[0].getMessage()

        probe = RdConsumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{compacted_dlq}.{queue}",
                            "enable.auto.commit": False})
        try:
            def committed() -> int:
                part = TopicPartition(f"{compacted_dlq}.{queue}", 0)
                return int(probe.committed([part], timeout=10)[0].offset)

            wait_until(lambda: committed() >= 2, 30)
        finally:
            probe.close()
    finally:
        worker.stop(10)
        app.close()
