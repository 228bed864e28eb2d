"""1,000 concurrent ``await asyncio.sleep(1)`` tasks on one ``--pool asyncio`` worker.

Run (SQLite by default; set YADTQ_BROKER_URL/YADTQ_BACKEND_URL for Kafka + Redis)::

    python benchmarks/async_sleeps.py [count]

Starts one real ``yadtq worker -A examples.async_app --pool asyncio -c <count>``,
waits for it to heartbeat, sends ``count`` one-second async tasks, and prints the
seconds from the first send until every result is stored (DESIGN.md §13 expects
about 1-2 s for 1,000), then how long reading them all back one ``get()`` at a
time took (a round trip each: client time, not the worker's).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(count: int) -> None:
    tmp = tempfile.mkdtemp(prefix="yadtq-async-bench-")
    env = dict(os.environ)
    env.setdefault("YADTQ_BROKER_URL", f"sqlite:///{tmp}/bench.db")
    env.setdefault("YADTQ_BACKEND_URL", env["YADTQ_BROKER_URL"])
    env.setdefault("YADTQ_DEFAULT_QUEUE", f"async-bench-{uuid.uuid4().hex[:8]}")
    env["YADTQ_HEARTBEAT_INTERVAL"] = "0.5"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    os.environ.update({k: env[k] for k in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL",
                                            "YADTQ_DEFAULT_QUEUE", "YADTQ_HEARTBEAT_INTERVAL")})
    sys.path.insert(0, str(ROOT))
    from examples.async_app import app, slow_double

    worker = subprocess.Popen([sys.executable, "-m", "yadtq.cli", "worker", "-A", "examples.async_app",
                               "--pool", "asyncio", "-c", str(count), "-l", "warning"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not any(w["status"] == "alive" for w in app.get_worker_status().values()):
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not start")
            time.sleep(0.1)
        slow_double.delay(0, 0.0).get(timeout=60)  # warm: the consumer is assigned its queue

        started = time.monotonic()
        results = [slow_double.delay(i, 1.0) for i in range(count)]
        sent = time.monotonic() - started
        took = _all_stored(app, [r.id for r in results], started)
        reading = time.monotonic()
        assert [r.get(timeout=120) for r in results] == [2 * i for i in range(count)]
        read = time.monotonic() - reading
        print(f"{count} concurrent 1 s async tasks on one worker: {took:.2f} s from the first send "
              f"until every result is stored (sending took {sent:.2f} s; reading the {count} "
              f"results one get() at a time then took {read:.2f} s; "
              f"{app.settings.broker_url.split(':')[0]} + {app.settings.backend_url.split(':')[0]})")
    finally:
        worker.terminate()
        worker.wait(60)
        app.close()


def _all_stored(app: Any, ids: list[str], started: float) -> float:
    """Seconds from ``started`` until every task is ready, looked at every 10 ms with one
    cheap read of all their states (what the worker's revocation check uses): the worker's
    time, not the client's thousand ``get`` round trips."""
    from yadtq.states import READY_STATES

    deadline = started + 120
    while True:
        states = app.backend.states(ids)
        if all(state in READY_STATES for state in states):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise SystemExit(f"{sum(s not in READY_STATES for s in states)} tasks not done in 120 s")
        time.sleep(0.01)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
