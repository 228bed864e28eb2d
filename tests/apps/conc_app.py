"""Tasks for the concurrency-limit tests: each counts, from inside, how many of its key run
at once, in a SQLite file every worker process of the host shares (``YADTQ_TEST_GAUGE``)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from yadtq import YADTQ

app = YADTQ("conc")

#: Where the counts live (a test sets it before importing this module).
GAUGE = os.environ.get("YADTQ_TEST_GAUGE", "/tmp/yadtq-conc-gauge.db")
LIMIT = 2


def _step(key: str, delta: int) -> None:
    conn = sqlite3.connect(GAUGE, timeout=60, isolation_level=None)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS gauge (key TEXT PRIMARY KEY, now INTEGER, most INTEGER)")
        conn.execute("BEGIN IMMEDIATE")
        for k in (key, "*"):  # "*": every key together
            conn.execute("INSERT INTO gauge (key, now, most) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                         " SET now = now + ?, most = max(most, now + ?)", (k, delta, delta, delta, delta))
        conn.execute("COMMIT")
    finally:
        conn.close()


def most() -> dict[str, int]:
    """The most runs seen at once, per key (``*``: all keys)."""
    conn = sqlite3.connect(GAUGE, timeout=60)
    try:
        return dict(conn.execute("SELECT key, most FROM gauge").fetchall())
    finally:
        conn.close()


@app.task(concurrency_limit=LIMIT, concurrency_key="tenant")
def tenant_job(tenant: str, n: int, hold: float) -> int:
    _step(tenant, 1)
    try:
        time.sleep(hold)
    finally:
        _step(tenant, -1)
    return n


@app.task(bind=True)
def ping(self: Any) -> str:
    """The worker that ran it (unlimited: to see every worker take part)."""
    return str(self.request.worker)


@app.task(concurrency_limit=1, concurrency_key="tenant")
def hog(tenant: str, marker: str) -> str:
    """Runs "forever" the first time (to be killed), at once afterwards."""
    path = Path(marker)
    if not path.exists():
        path.write_text("started")
        time.sleep(600)
    return tenant
