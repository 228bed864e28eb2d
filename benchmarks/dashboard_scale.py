"""Does a dashboard page cost more with more stored results? (docs/dashboard.md, "Cost").

Stores finished task records through the backend's own batch API
(``ResultBackend.record``, 5,000 state changes a call: 97 % ``success`` with a small
result, 3 % ``failed`` with an error), and after each size in ``SIZES`` (up to N) times
every data request the dashboard's pages make, through Starlette's ``TestClient``
against the dashboard's ASGI app: ``/api/overview`` (the queues, workers, failures and
schedules pages and the live stream all read it), ``/api/tasks`` (the tasks page: all,
by state, and a search by name and by id prefix), ``/api/tasks/{id}`` (a detail page,
of the first task stored and of a failed one), ``/api/dead-letters`` and ``/metrics``.
Two more rows: ``/api/config``, which reads nothing (the floor: test client, threads,
the machine's load), and ``backend.snapshot(50)`` called directly (the backend's part
of ``/api/overview``, without HTTP and JSON). The dashboard's one-second snapshot
cache and the five-second cache of ``/metrics`` are turned off, so every request reads
the backend afresh (what a request pays when the cache is cold; with it, the requests
of one second share one read). Prints the median and the largest of ``REPEAT``
requests, in milliseconds, per request and size::

    python3 benchmarks/dashboard_scale.py sqlite:////tmp/dash.db         # 1,000,000 records
    python3 benchmarks/dashboard_scale.py redis://127.0.0.1:6379/0 100000

SQLite: the file must not exist yet and is deleted at the end (with its -wal/-shm).
Redis: everything is written under a fresh namespace (``dashscale-<hex>``), whose keys
are deleted at the end (SCAN by prefix, UNLINK); nothing else in the database is touched.
The broker is the SQLite file for ``sqlite://`` and ``memory://`` for Redis (the
broker holds queued messages, not history). Run from the repository root.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.getcwd())

with warnings.catch_warnings():  # Starlette 1.x: "install httpx2 instead" (httpx still works)
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from runner import delete_namespace_keys

from yadtq import YADTQ
from yadtq.dashboard import data, web
from yadtq.dashboard.web import create_app
from yadtq.envelope import pack
from yadtq.metrics import ClusterCollector
from yadtq.transports.types import ErrorInfo, StateChange

BATCH = 5000
REPEAT = 20
FAILED_EVERY = 33
SIZES = (10_000, 100_000)
NAMES = ("shop.send_email", "shop.resize_image", "billing.charge", "reports.build")
#: One week: the records outlive the run (the default expiry would too).
EXPIRES = 7 * 24 * 3600.0


class _Uncached(data.SnapshotCache):
    """The dashboard's snapshot cache with no time to live: each request takes a snapshot."""

    def __init__(self, app: YADTQ, ttl: float = 0.0) -> None:
        super().__init__(app, ttl=0.0)


class _UncachedCollector(ClusterCollector):
    """The ``/metrics`` collector with no cache: each scrape takes a snapshot."""

    def __init__(self, app: YADTQ, *args: Any, **kwargs: Any) -> None:
        kwargs["cache_seconds"] = 0.0
        super().__init__(app, *args, **kwargs)


def _changes(start: int, count: int, now: float) -> list[StateChange]:
    error = ErrorInfo("ValueError", "bad input", ("bad input",), "Traceback ...\nValueError: bad input\n")
    result = pack({"ok": True, "n": 1})
    changes = []
    for i in range(start, start + count):
        task_id = f"{i:08d}{uuid.uuid4().hex[8:]}"
        name = NAMES[i % len(NAMES)]
        if i % FAILED_EVERY == 0:
            changes.append(StateChange(task_id, "failed", now, worker="bench@host", name=name,
                                       queue="default", error=error, retries=0))
        else:
            changes.append(StateChange(task_id, "success", now, worker="bench@host", name=name,
                                       queue="default", result=result, retries=0))
    return changes


def fill(app: YADTQ, start: int, stop: int) -> float:
    """Store records ``start`` to ``stop``; returns the seconds it took."""
    began = time.perf_counter()
    for first in range(start, stop, BATCH):
        app.backend.record(_changes(first, min(BATCH, stop - first), time.time()))
    return time.perf_counter() - began


def _time(call: Callable[[], Any]) -> tuple[float, float]:
    call()  # warm: connections, compiled statements, scripts loaded
    took = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        call()
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took), max(took)


def measure(app: YADTQ, client: TestClient, first_id: str,
            failed_id: str) -> dict[str, tuple[float, float]]:
    """Median and largest milliseconds of each page's data request, of the backend's
    snapshot read alone, and of a request that reads nothing (the floor: the client,
    the threads and the machine's load)."""
    def get(path: str, **params: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, params=params)
            assert response.status_code == 200, (path, response.status_code, response.text[:200])
            return response
        return call

    requests = {
        "/api/config (reads nothing)": get("/api/config"),
        "backend.snapshot(50) alone": lambda: app.backend.snapshot(data.LIST_LIMIT),
        "/api/overview": get("/api/overview"),
        "/api/tasks": get("/api/tasks"),
        "/api/tasks?state=failed": get("/api/tasks", state="failed"),
        "/api/tasks?q=billing": get("/api/tasks", q="billing"),
        "/api/tasks?q=<id prefix>": get("/api/tasks", q=first_id[:8]),
        "/api/tasks/<first id>": get(f"/api/tasks/{first_id}"),
        "/api/tasks/<failed id>": get(f"/api/tasks/{failed_id}"),
        "/api/dead-letters": get("/api/dead-letters"),
        "/metrics": get("/metrics"),
    }
    return {label: _time(call) for label, call in requests.items()}


def _table(sizes: Sequence[int], results: dict[int, dict[str, tuple[float, float]]]) -> str:
    labels = list(results[sizes[0]])
    head = "| request | " + " | ".join(f"{n:,} stored: median / max ms" for n in sizes) + " |"
    rows = [head, "|" + "---|" * (len(sizes) + 1)]
    for label in labels:
        cells = " | ".join(f"{results[n][label][0]:.1f} / {results[n][label][1]:.1f}" for n in sizes)
        rows.append(f"| `{label}` | {cells} |")
    return "\n".join(rows)


def main(url: str, total: int) -> None:
    """Fill ``url``'s backend to ``total`` records, timing the pages at each size on the way."""
    namespace = f"dashscale-{uuid.uuid4().hex[:8]}"
    if url.startswith("sqlite://"):
        path = Path(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):])
        if path.exists():
            sys.exit(f"{path} exists: give a file that does not")
        app = YADTQ("dashscale", broker=url, backend=url, result_expires=EXPIRES)
    elif url.startswith("redis"):
        path = None
        app = YADTQ("dashscale", broker="memory://", backend=url, namespace=namespace,
                    result_expires=EXPIRES)
    else:
        sys.exit("usage: python3 benchmarks/dashboard_scale.py sqlite:///FILE|redis://HOST:PORT/DB [N]")
    sizes = sorted({n for n in SIZES if n < total} | {total})
    data.SnapshotCache = _Uncached  # type: ignore[misc]
    web.ClusterCollector = _UncachedCollector  # type: ignore[attr-defined,misc]
    results: dict[int, dict[str, tuple[float, float]]] = {}
    try:
        first = _changes(0, 1, time.time())[0]
        app.backend.record([first])
        failed_id = ""
        stored = 1
        with TestClient(create_app(app)) as client:
            for size in sizes:
                took = fill(app, stored, size)
                print(f"stored {size:,} records ({size - stored:,} in {took:.1f} s, "
                      f"{(size - stored) / max(took, 1e-9):,.0f}/s)", flush=True)
                stored = size
                if not failed_id:
                    failed = app.backend.snapshot(1).recent_failures
                    failed_id = failed[0].task_id if failed else first.task_id
                results[size] = measure(app, client, first.task_id, failed_id)
                totals = app.backend.snapshot(0).totals
                print(f"  totals: succeeded {totals.succeeded:,}, failed {totals.failed:,}", flush=True)
        print()
        print(f"backend {url.split(':')[0]}, {REPEAT} requests each, snapshot cache off, "
              f"load average {os.getloadavg()[0]:.2f} at the end")
        print(_table(sizes, results))
    finally:
        app.close()
        if path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            print(f"deleted {delete_namespace_keys(url, namespace):,} keys under {namespace}:")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python3 benchmarks/dashboard_scale.py sqlite:///FILE|redis://HOST:PORT/DB [N]")
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1_000_000)
