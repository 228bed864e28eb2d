"""``app.send_many`` on Kafka + Redis: a bulk reaches real workers, each task runs once,
and its scheduled members are stored in one step and published when due."""

from __future__ import annotations

import time

import pytest

from yadtq import states

from ..worker.procs import running_workers
from .conftest import APP, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(180)]


def test_a_bulk_runs_once_each_on_real_workers(cluster: Cluster) -> None:
    add = cluster.module.add
    due_at = time.time() + 1.5
    results = cluster.app.send_many(
        [add.s(i, 1000) for i in range(300)]
        + [("add", (1, 2), None, {"key": "same"}), add.s(5, 5).set(eta=due_at)])
    assert results[-1].state == states.SCHEDULED  # stored with the bulk, before any worker runs
    cluster.app.flush(30)
    with running_workers(2, APP, cluster.env, cluster.logdir, ["-c", "8"]):
        values = [r.get(timeout=120) for r in results]
    assert values == [i + 1000 for i in range(300)] + [3, 10]
    record = results[-1].info
    started = record.timestamp(states.PROCESSING) if record is not None else None
    assert started is not None and started >= due_at - 0.5  # not before its eta
    assert all(cluster.counter(f"add:{i}:1000") == 1 for i in range(300))
