"""Celery on kombu's Kafka transport (confluent-kafka), results in Redis."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench", broker="confluentkafka://" + os.environ["BENCH_KAFKA"],
             backend=os.environ["BENCH_REDIS"])
app.conf.update(
    task_default_queue=os.environ["BENCH_QUEUE"],
    # wait_time_seconds: how long one poll of the consumer waits for a message (default
    # 5). polling_interval: kombu's sleep after a poll that found none, 1 s by default
    # for its polled transports; with it, each worker slept a second at a time and ran
    # 3,000 tasks in 28-46 s in about half the rounds (64-108 tasks/s) and in 4 s in the
    # others (580-725/s), and drained the backlog at 30/s. With 0.01 s: 722, 765 and 731
    # tasks/s end to end in three runs, the backlog drained in 5-6 s (2026-12-03).
    broker_transport_options={"num_partitions": 8, "wait_time_seconds": 1, "polling_interval": 0.01},
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
