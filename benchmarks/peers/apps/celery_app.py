"""Celery on kombu's Kafka transport (confluent-kafka), results in Redis."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench", broker="confluentkafka://" + os.environ["BENCH_KAFKA"],
             backend=os.environ["BENCH_REDIS"])
app.conf.update(
    task_default_queue=os.environ["BENCH_QUEUE"],
    broker_transport_options={"num_partitions": 8, "wait_time_seconds": 1},
    worker_enable_remote_control=False,  # the Kafka transport has no fanout
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing."""


@app.task(name="bench.add")
def add(x: int, y: int) -> int:
    return x + y
