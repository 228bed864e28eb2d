"""Where a round trip's time goes: ``add.delay(2, 3).get()`` with an in-process worker,
timed at each step, and the backend's single-call costs.

    python3 benchmarks/roundtrip_breakdown.py kafka://127.0.0.1:9092 redis://127.0.0.1:6379/0 [N]
    python3 benchmarks/roundtrip_breakdown.py sqlite:////tmp/rt.db sqlite:////tmp/rt.db [N]

Steps, from the moment ``delay`` is called: the broker hands the message to the worker
(``to fetch``), the worker's claim is stored (``fetch -> claimed``), a pool thread starts
it (``claimed -> run``), its outcome is stored (``run -> recorded``), the waiting client
has the result (``recorded -> client``; the backend's notification can reach the client
before the worker has the reply to its own store, so this can be near zero). Then the
median cost of one ``claim``, ``record``, ``get`` and ``states`` call alone (a Redis
``PING`` for scale) and, on Kafka, the bare hop: one message from a confluent-kafka
producer to a consumer already assigned its partitions, the floor under ``to fetch``.
The worker runs in this process (same as ``-P threads``), so the steps can be stamped;
nothing here is asserted by tests.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, Callable

QUEUE = f"rt{uuid.uuid4().hex[:6]}"
STEPS = ("to fetch", "fetch -> claimed", "claimed -> run", "run -> recorded", "recorded -> client",
         "total")


def _line(name: str, values_s: Sequence[float]) -> str:
    ms = sorted(v * 1000 for v in values_s)
    return f"| {name} | {statistics.median(ms):.2f} | {ms[int(len(ms) * 0.9)]:.2f} |"


def main(broker: str, backend: str, samples: int) -> None:
    os.environ.update(YADTQ_BROKER_URL=broker, YADTQ_BACKEND_URL=backend, YADTQ_DEFAULT_QUEUE=QUEUE)
    import yadtq.worker.pools as pools
    from yadtq.benchapp import add, app
    from yadtq.envelope import HEADER_ID
    from yadtq.transports.base import Claim, StateChange
    from yadtq.worker.consumer import TaskConsumer
    from yadtq.worker.main import Worker

    marks: dict[str, dict[str, float]] = {}

    def mark(task_id: str, step: str) -> None:
        marks.setdefault(task_id, {})[step] = time.perf_counter()

    dispatch = TaskConsumer.dispatch

    def stamped_dispatch(self: TaskConsumer, deliveries: Sequence[Any]) -> None:
        for d in deliveries:
            mark(d.headers.get(HEADER_ID, b"").decode(), "fetched")
        dispatch(self, deliveries)

    execute = pools.execute

    def stamped_execute(app_: Any, envelope: Any, worker: Any = None) -> Any:
        mark(envelope.id, "run")
        return execute(app_, envelope, worker)

    be = app.backend
    claim, record = be.claim, be.record

    def stamped_claim(claims: Sequence[Claim], *args: Any, **kwargs: Any) -> Any:
        out = claim(claims, *args, **kwargs)
        for c in claims:
            mark(c.task_id, "claimed")
        return out

    def stamped_record(changes: Sequence[StateChange], *args: Any, **kwargs: Any) -> Any:
        out = record(changes, *args, **kwargs)
        for c in changes:
            mark(c.task_id, "recorded")
        return out

    TaskConsumer.dispatch = stamped_dispatch  # type: ignore[method-assign]
    pools.execute = stamped_execute  # type: ignore[assignment]
    be.claim, be.record = stamped_claim, stamped_record  # type: ignore[method-assign]
    worker = Worker(app, name=QUEUE, concurrency=8).start()
    rows: dict[str, list[float]] = {step: [] for step in STEPS}
    try:
        for _ in range(30):  # warm-up: connections, topic, partitions assigned
            add.delay(1, 1).get(timeout=120)
        for _ in range(samples):
            t0 = time.perf_counter()
            result = add.delay(2, 3)
            assert result.get(timeout=30) == 5
            t1 = time.perf_counter()
            m = marks[result.id]
            end = time.monotonic() + 1
            while "recorded" not in m and time.monotonic() < end:
                time.sleep(0.001)
            del marks[result.id]
            for step, value in zip(STEPS, (m["fetched"] - t0, m["claimed"] - m["fetched"],
                                           m["run"] - m["claimed"], m["recorded"] - m["run"],
                                           t1 - m["recorded"], t1 - t0)):
                rows[step].append(value)
    finally:
        worker.stop(timeout=30)
        be.claim, be.record = claim, record  # type: ignore[method-assign]
    print(f"round trip with a worker in this process, {samples} samples, "
          f"{broker.split(':')[0]} + {backend.split(':')[0]}, load {os.getloadavg()[0]:.2f}\n")
    print("| step | p50 ms | p90 ms |\n|---|---|---|")
    for step in STEPS:
        print(_line(step, rows[step]))
    print("\n| one call alone | p50 ms | p90 ms |\n|---|---|---|")
    ids = [uuid.uuid4().hex for _ in range(200)]
    now = time.time()
    calls: dict[str, Callable[[str], Any]] = {
        "claim": lambda i: be.claim([Claim(i, "bench.add", QUEUE, 0, "rt-probe", "rt", now, now)]),
        "record": lambda i: be.record([StateChange(i, "success", now, worker="rt", name="bench.add",
                                                   queue=QUEUE, result=b"\x05")]),
        "get": lambda i: be.get([i]),
        "states": lambda i: be.states([i]),
    }
    client = getattr(be, "_redis", None)
    if client is not None:
        calls = {"ping": lambda i: client.ping(), **calls}
    for name, call in calls.items():
        took = []
        for task_id in ids:
            t0 = time.perf_counter()
            call(task_id)
            took.append(time.perf_counter() - t0)
        print(_line(name, took))
    app.close()
    if broker.startswith("kafka://"):
        print(_line("bare Kafka hop", _kafka_hop(broker[len("kafka://"):].split("/")[0], 200)))


def _kafka_hop(bootstrap: str, samples: int) -> list[float]:
    """Produce-to-consume times of single messages with plain confluent-kafka clients set
    as yadtq sets its own (idempotent producer, no linger)."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{QUEUE}-hop"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    took: list[float] = []
    try:
        producer.produce(topic, b"warm-up")
        producer.flush(10)
        while consumer.poll(1.0) is None:
            pass
        for _ in range(samples):
            t0 = time.perf_counter()
            producer.produce(topic, b"x")
            producer.poll(0)
            while consumer.poll(1.0) is None:
                pass
            took.append(time.perf_counter() - t0)
    finally:
        producer.flush(10)
        consumer.close()
        admin.delete_topics([topic])
    return took


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: roundtrip_breakdown.py BROKER_URL BACKEND_URL [SAMPLES]")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 300)
