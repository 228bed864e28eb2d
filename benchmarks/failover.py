"""Failover time of a SIGKILLed worker on Kafka + Redis (docs/semantics.md, "Failover").

Two real ``yadtq worker`` processes share a queue of 4 partitions; 16 long
tasks run on both; worker A is SIGKILLed. Prints, as JSON, the seconds from the
kill until a task on every partition completed again (``partitions_served_s``)
and, unless ``NO_RERUN`` is set, until every long task A was running started
again elsewhere (``inflight_rerun_s``). ``HEARTBEAT`` sets the workers'
``heartbeat_interval`` (default 1; yadtq's own default is 5).

    K=127.0.0.1:9092 R=redis://127.0.0.1:6379/0 python3 benchmarks/failover.py '{}'
    ... python3 benchmarks/failover.py '{"group.protocol": "consumer"}'

The argument is the workers' ``broker_options`` (JSON). Run it from the
repository root, against servers of your own (``scripts/services.sh up``).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.getcwd())

import redis

from tests.worker.procs import WorkerProcess, wait_ready, worker_env

APP = "tests.apps.kafka_app"
LONG = 16


def main(broker_options: str) -> dict[str, object]:
    unique = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix=f"yadtq-failover-{unique}-"))
    counters = f"fo-{unique}:c"
    settings = {"default_queue": f"fo-{unique}", "backend_options": json.dumps({"prefix": f"fo-{unique}"}),
                "heartbeat_interval": os.environ.get("HEARTBEAT", "1"), "partitions": "4",
                "broker_options": broker_options}
    env = worker_env("kafka://" + os.environ["K"], os.environ["R"], tmp, **settings)
    env.update({"YADTQ_TEST_REDIS": os.environ["R"], "YADTQ_TEST_COUNTERS": counters})
    os.environ.update({k: v for k, v in env.items() if k.startswith("YADTQ_")})
    module = importlib.import_module(APP)
    app = module.app
    store = redis.Redis.from_url(os.environ["R"])

    def counter(name: str) -> int:
        return int(store.get(f"{counters}:{name}") or 0)

    workers = [WorkerProcess(APP, env, name, tmp / f"{name}.log", ["-c", "24"]) for name in "AB"]
    try:
        wait_ready(workers, app.get_worker_status, timeout=90)
        seen: set[str] = set()
        n = 0
        while seen != {"A", "B"}:  # both own partitions
            batch = [module.add.delay(-1, n + i) for i in range(16)]
            n += 16
            for result in batch:
                result.get(timeout=60)
                seen.add(result.worker)
        long = [module.sleep_then.apply_async((f"long{i}", 40.0), key=f"k{i}") for i in range(LONG)]
        deadline = time.monotonic() + 60
        while sum(counter(f"long{i}:started") for i in range(LONG)) < LONG:
            if time.monotonic() > deadline:
                raise SystemExit("the long tasks did not all start")
            time.sleep(0.05)
        on_a = [i for i in range(LONG) if app.AsyncResult(long[i].id).worker == "A"]
        workers[0].signal(signal.SIGKILL)
        workers[0].wait(10)
        killed = time.monotonic()
        for result in [module.add.apply_async((i, 1000), key=f"k{i}") for i in range(LONG)]:
            result.get(timeout=120)
        report: dict[str, object] = {"broker_options": broker_options, "tasks_on_killed": len(on_a),
                                     "partitions_served_s": round(time.monotonic() - killed, 1)}
        if not os.environ.get("NO_RERUN"):
            while not all(counter(f"long{i}:started") >= 2 for i in on_a):
                if time.monotonic() - killed > 120:
                    report["inflight_rerun_s"] = None
                    return report
                time.sleep(0.05)
            report["inflight_rerun_s"] = round(time.monotonic() - killed, 1)
        return report
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait(10)
        app.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "{}")))
