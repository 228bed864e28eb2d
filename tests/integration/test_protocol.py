"""A message built by hand from docs/protocol.md (raw msgpack + confluent-kafka, no
yadtq code on the sending side) is run by a real worker."""

from __future__ import annotations

import datetime as dt
import uuid

import msgpack
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ..worker.procs import running_workers
from .conftest import APP, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def test_hand_built_message_is_run(cluster: Cluster, kafka_bootstrap: str) -> None:
    topic = f"yadtq.{cluster.queue}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        future.result(timeout=30)

    task_id = uuid.uuid4().hex
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    body = msgpack.packb({"v": 1, "id": task_id, "task": "tests.apps.kafka_app.add",
                          "args": [2, 3], "kwargs": {}}, use_bin_type=True)
    stamp_id = uuid.uuid4().hex
    stamp_body = msgpack.packb({"v": 1, "id": stamp_id, "task": "tests.apps.kafka_app.stamp",
                                "args": [msgpack.ExtType(1, when.isoformat().encode())]},
                               use_bin_type=True)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, body, key=task_id.encode(),
                     headers={"yadtq-task": b"tests.apps.kafka_app.add", "yadtq-version": b"1",
                              "yadtq-id": task_id.encode()})
    producer.produce(topic, stamp_body, key=stamp_id.encode())
    assert producer.flush(30) == 0

    with running_workers(1, APP, cluster.env, cluster.logdir):
        assert cluster.app.AsyncResult(task_id).get(timeout=60) == 5
        assert isinstance(cluster.app.AsyncResult(stamp_id).get(timeout=60), float)
    # the datetime arrived as a datetime: stamp counted under its str() key
    assert cluster.counter(str(when)) == 1
