"""Prometheus metrics: a worker's own counters and the cluster gauges, in process on
memory:// and from ``yadtq worker --metrics-port`` on SQLite."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Cli, wait_for
from tests.ports import free_port
from yadtq import YADTQ
from yadtq.metrics import ClusterCollector, TaskMetrics, exposition, new_registry
from yadtq.worker.main import Worker

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def app() -> Iterator[YADTQ]:
    app = YADTQ("metrics", broker="memory://", backend="memory://", heartbeat_interval=0.2)

    @app.task(name="m.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="m.fail", max_retries=0)
    def fail() -> None:
        raise ValueError("no")

    try:
        yield app
    finally:
        app.close()


def test_worker_counts_tasks_and_runtimes_and_the_cluster_gauges(app: YADTQ) -> None:
    registry = new_registry()
    metrics = TaskMetrics(registry)
    registry.register(ClusterCollector(app, cache_seconds=0, totals=True))
    worker = Worker(app, name="metered", concurrency=2)
    worker.stats.observer = metrics
    worker.start()
    try:
        for i in range(3):
            assert app.send_task("m.add", (i, i)).get(timeout=30) == 2 * i
        with pytest.raises(ValueError):
            app.send_task("m.fail").get(timeout=30)
        app.send_task("m.add", (1, 1), countdown=3600)
        wait_for(lambda: app.backend.workers(), 30, "a heartbeat")
        found = samples(exposition(registry).decode())
    finally:
        worker.stop(timeout=30)
    assert found[("yadtq_tasks_total", (("state", "success"), ("task", "m.add")))] == 3
    assert found[("yadtq_tasks_total", (("state", "failed"), ("task", "m.fail")))] == 1
    assert found[("yadtq_task_runtime_seconds_count", (("task", "m.add"),))] == 3
    assert found[("yadtq_tasks_total", (("state", "success"), ("task", "")))] == 3  # cluster totals
    assert found[("yadtq_queue_depth", (("queue", "default"),))] == 0
    assert ("yadtq_queue_oldest_age_seconds", (("queue", "default"),)) in found
    assert found[("yadtq_scheduled", ())] == 1
    assert found[("yadtq_retrying", ())] == 0
    assert found[("yadtq_dead_letters_total", ())] == 0
    assert found[("yadtq_workers", (("status", "alive"),))] == 1
    assert found[("yadtq_cluster_up", ())] == 1


def test_queue_depth_and_age_of_waiting_tasks(app: YADTQ) -> None:
    registry = new_registry()
    registry.register(ClusterCollector(app, ["default"], cache_seconds=0))
    for i in range(4):
        app.send_task("m.add", (i, 1))
    found = samples(exposition(registry).decode())
    assert found[("yadtq_queue_depth", (("queue", "default"),))] == 4
    assert found[("yadtq_queue_oldest_age_seconds", (("queue", "default"),))] >= 0


def test_worker_metrics_port_serves_prometheus_text(cli: Cli) -> None:
    port = free_port()
    cli.start_worker("-A", "examples.math_app", "--metrics-port", str(port), name="metrics")
    sent = cli.run("submit", "-A", "examples.math_app", "add", "2", "3", "--wait")
    assert sent.stdout.split()[-1] == "5", sent.stderr

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return str(reply.read().decode())

    found = samples(wait_for(lambda: "yadtq_tasks_total" in scrape() and scrape(), 30, "metrics"))
    assert found[("yadtq_tasks_total", (("state", "success"), ("task", "examples.math_app.add")))] == 1
    assert found[("yadtq_workers", (("status", "alive"),))] == 1
    busy = cli.run("worker", "-A", "examples.math_app", "-n", "second", "--metrics-port", str(port))
    assert busy.returncode == 1
    assert "cannot serve metrics on 0.0.0.0:" in busy.stderr
