"""Task details on Kafka + Redis: a worker saves each started task's call and indexes
a chain's steps under their parent; the dashboard's task page reads them."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from yadtq.dashboard.data import task_detail
from yadtq.worker.main import Worker

from .conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(180)]


def eventually(read: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_calls_and_children_on_kafka_and_redis(cluster: Cluster) -> None:
    app, add = cluster.app, cluster.module.add
    worker = Worker(app, name=f"details-{cluster.queue}", concurrency=2).start()
    try:
        chained = (add.s(1, 2) | add.s(30)).apply_async()
        assert chained.get(timeout=90) == 33
    finally:
        worker.stop(timeout=30)
    first = chained.parent
    assert first is not None
    call = eventually(lambda: (task_detail(app, first.id) or {}).get("call"), 30, "the first call")
    assert call["args"] == ["1", "2"]
    detail = task_detail(app, first.id)
    assert detail is not None
    assert [(c["task_id"], c["state"]) for c in detail["children"]] == [(chained.id, "success")]
    second = task_detail(app, chained.id)
    assert second is not None and second["call"]["parent_id"] == first.id
    assert second["call"]["args"] == ["3", "30"]
