"""Static membership on Kafka (docs/semantics.md, "Failover"): two workers A and B, then

- ``restart``: A is SIGKILLed and started again at once under the same name;
- ``stop``: A is stopped with SIGTERM and not restarted.

Prints, as JSON, the seconds until a task on every partition completed again and
how many rebalance lines (assigned/revoked/lost) B logged meanwhile.

    K=127.0.0.1:9092 R=redis://127.0.0.1:6379/0 \
        python3 benchmarks/static_membership.py '{"kafka_static_membership": true}' restart

Run from the repository root, against servers of your own (``scripts/services.sh up``).
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

from tests.worker.procs import WorkerProcess, wait_ready, worker_env

unique = uuid.uuid4().hex[:8]

tmp = Path(tempfile.mkdtemp(prefix=f"yadtq-static-{unique}-"))
settings = {"default_queue": f"st-{unique}", "backend_options": json.dumps({"prefix": f"st-{unique}"}),
            "heartbeat_interval": "1", "partitions": "4", "broker_options": sys.argv[1]}
env = worker_env("kafka://" + os.environ["K"], os.environ["R"], tmp, **settings)
env.update({"YADTQ_TEST_REDIS": os.environ["R"], "YADTQ_TEST_COUNTERS": f"st-{unique}:c"})
os.environ.update({k: v for k, v in env.items() if k.startswith("YADTQ_")})
mod = importlib.import_module("tests.apps.kafka_app")
mode = sys.argv[2]  # restart | stop
a = WorkerProcess("tests.apps.kafka_app", env, "A", tmp / "A.log", ["-c", "8"])
b = WorkerProcess("tests.apps.kafka_app", env, "B", tmp / "B.log", ["-c", "8"])
a2 = None
try:
    wait_ready([a, b], mod.app.get_worker_status, timeout=90)
    seen, n = set(), 0
    while seen != {"A", "B"}:
        res = [mod.add.delay(-1, n + i) for i in range(16)]
        n += 16
        for x in res:
            x.get(timeout=60)
            seen.add(x.worker)
    b_before = b.log().count("assigned") + b.log().count("revoked") + b.log().count("lost")
    if mode == "restart":
        a.signal(signal.SIGKILL)
        a.wait(10)
        t0 = time.monotonic()
        a2 = WorkerProcess("tests.apps.kafka_app", env, "A", tmp / "A2.log", ["-c", "8"])
    else:
        a.signal(signal.SIGTERM)
        a.wait(60)
        t0 = time.monotonic()
    for r in [mod.add.apply_async((i, 1000), key=f"k{i}") for i in range(16)]:
        r.get(timeout=120)
    served = time.monotonic() - t0
    time.sleep(2)
    b_after = b.log().count("assigned") + b.log().count("revoked") + b.log().count("lost")
    print(json.dumps({"options": sys.argv[1], "mode": mode, "served_s": round(served, 1),
                      "rebalance_lines_on_B": b_after - b_before}))
finally:
    for w in (a, b, a2):
        if w is not None:
            if w.proc.poll() is None:
                w.proc.kill()
            w.proc.wait(10)
