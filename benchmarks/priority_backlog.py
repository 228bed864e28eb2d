"""Priorities under a backlog (DESIGN.md section 12): with 20,000 low-priority tasks
queued, how long a priority-9 task waits until it starts.

The backlog (tasks of 10 ms each, so it lasts minutes) is queued while no worker runs,
with one priority-9 task that creates the queue's high lane on Kafka. Then one worker
(``-c 2``, threads) starts; once that first high task ran, ``--samples`` more are sent
one at a time, each measured from its send to its start (one host: one clock). Prints
JSON: each wait in milliseconds, their median and maximum, and the backlog left.

    python3 benchmarks/priority_backlog.py sqlite
    K=127.0.0.1:9092 R=redis://127.0.0.1:6379/0 python3 benchmarks/priority_backlog.py kafka

Run from the repository root; ``kafka`` also reads ``YADTQ_TEST_KAFKA``/``YADTQ_TEST_REDIS``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.getcwd())

from tests.worker.procs import WorkerProcess, wait_ready, worker_env

APP = "tests.apps.priority_app"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("transport", choices=("sqlite", "kafka"))
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=10)
    options = parser.parse_args()
    unique = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix=f"yadtq-prio-{unique}-"))
    queue = f"prio-{unique}"
    settings = {"default_queue": queue, "heartbeat_interval": "1"}
    if options.transport == "kafka":
        kafka = os.environ.get("K") or os.environ["YADTQ_TEST_KAFKA"]
        redis = os.environ.get("R") or os.environ["YADTQ_TEST_REDIS"]
        settings.update({"backend_options": json.dumps({"prefix": queue}), "partitions": "4"})
        env = worker_env(f"kafka://{kafka}", redis, tmp, **settings)
    else:
        url = f"sqlite:///{tmp / 'yadtq.db'}"
        env = worker_env(url, url, tmp, **settings)
    os.environ.update({k: v for k, v in env.items() if k.startswith("YADTQ_")})
    m = importlib.import_module(APP)
    started = time.monotonic()
    for _ in range(options.backlog):
        m.hold.delay(0.01)
    first = m.step.apply_async((0,), priority=9)
    m.app.flush()
    queued_s = time.monotonic() - started
    worker = WorkerProcess(APP, env, "prio", tmp / "prio.log", ["-c", "2"])
    try:
        wait_ready([worker], m.app.get_worker_status, timeout=90)
        first.get(timeout=120)
        waits = []
        for n in range(options.samples):
            sent = time.time()
            waits.append((m.step.apply_async((n,), priority=9).get(timeout=120) - sent) * 1000)
            time.sleep(0.2)
        left = m.app.broker.depth(queue)
        print(json.dumps({
            "transport": options.transport, "backlog": options.backlog,
            "backlog_left_after": left, "queue_backlog_s": round(queued_s, 1),
            "wait_ms": [round(w, 1) for w in waits],
            "wait_ms_median": round(statistics.median(waits), 1),
            "wait_ms_max": round(max(waits), 1),
        }))
    finally:
        worker.stop()
        m.app.purge(queue)
        m.app.close()


if __name__ == "__main__":
    main()
