"""Prometheus metrics, with the official ``prometheus_client`` (``pip install 'yadtq[metrics]'``).

Two sources, one set of names (DESIGN.md section 14):

- :class:`TaskMetrics`, in a worker: what it ran, counted as outcomes are stored:
  ``yadtq_tasks_total{task,state}``, ``yadtq_task_runtime_seconds{task}`` and
  ``yadtq_claims_refused_total{decision}`` (deliveries not run: already finished,
  revoked, or running elsewhere).
- :class:`ClusterCollector`, read at scrape time from the counters and indexes the
  backend keeps and the broker's queue depths (cost independent of history, and
  cached for ``cache_seconds`` so frequent scrapes cost one read):
  ``yadtq_queue_depth{queue}``, ``yadtq_queue_oldest_age_seconds{queue}``,
  ``yadtq_scheduled``, ``yadtq_retrying``, ``yadtq_processing``,
  ``yadtq_dead_letters_total``, ``yadtq_workers{status}`` and, on the dashboard,
  ``yadtq_tasks_total{task="",state}`` (the cluster's totals; a worker's own series
  carry the task name).

``yadtq worker --metrics-port N`` serves both (its cluster gauges cover the queues it
consumes); the dashboard serves the cluster collector on ``/metrics``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional

from .exceptions import ConfigurationError, YADTQError

if TYPE_CHECKING:
    from .app import YADTQ
    from .monitor import ClusterSnapshot

logger = logging.getLogger(__name__)

#: Runtime histogram buckets, in seconds: from a no-op task to a long one.
RUNTIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Seconds a cluster reading is reused between scrapes.
DEFAULT_CACHE_SECONDS = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "metrics need prometheus_client: pip install 'yadtq[metrics]'") from None
    return prometheus_client


def new_registry() -> Any:
    """An empty ``prometheus_client.CollectorRegistry``."""
    return _client().CollectorRegistry(auto_describe=True)


class TaskMetrics:
    """A worker's own counters; :meth:`observe` is called with each stored batch."""

    def __init__(self, registry: Any) -> None:
        client = _client()
        self.tasks = client.Counter("yadtq_tasks", "Task attempts by final state of the attempt "
                                    "(success, failed, retrying).", ["task", "state"], registry=registry)
        self.runtime = client.Histogram("yadtq_task_runtime_seconds", "Seconds a task attempt ran.",
                                        ["task"], buckets=RUNTIME_BUCKETS, registry=registry)
        self.refused = client.Counter("yadtq_claims_refused", "Deliveries not run after their claim "
                                      "(skip: finished or superseded, revoked, busy: running elsewhere).",
                                      ["decision"], registry=registry)

    def observe(self, outcomes: Iterable[tuple[str, str, float]]) -> None:
        """Count ``(task name, state, runtime)`` of finished attempts."""
        for name, state, runtime in outcomes:
            self.tasks.labels(name, state).inc()
            self.runtime.labels(name).observe(max(0.0, runtime))

    def claims_refused(self, decisions: Iterable[str]) -> None:
        for decision in decisions:
            self.refused.labels(decision).inc()


class ClusterCollector:
    """Cluster gauges read from a :func:`yadtq.monitor.take_snapshot` at scrape time.

    Args:
        app: the app whose transports to read.
        queues: the queues to report (default: those the workers consume).
        totals: also export the backend's totals as ``yadtq_tasks_total{task=""}``.
        cache_seconds: how long one reading serves scrapes.
    """

    def __init__(self, app: YADTQ, queues: Optional[Sequence[str]] = None, *, totals: bool = False,
                 cache_seconds: float = DEFAULT_CACHE_SECONDS) -> None:
        self.app = app
        self.queues = list(queues) if queues else None
        self.totals = totals
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: Optional[ClusterSnapshot] = None
        self._read_at = 0.0

    def snapshot(self) -> Optional[ClusterSnapshot]:
        """The latest reading, refreshed when older than ``cache_seconds`` (``None``: unreachable)."""
        from .monitor import take_snapshot

        with self._lock:
            if self._cached is None or time.monotonic() - self._read_at >= self.cache_seconds:
                try:
                    self._cached = take_snapshot(self.app, self.queues, limit=0)
                    self._read_at = time.monotonic()
                except YADTQError as exc:
                    logger.warning("metrics: cannot read the cluster: %s", exc)
                    return None
            return self._cached

    def describe(self) -> list[Any]:
        return []  # described by collecting, lazily: no transport read at registration

    def collect(self) -> Iterable[Any]:
        _client()
        core: Any = importlib.import_module("prometheus_client.core")
        snap = self.snapshot()
        up = core.GaugeMetricFamily("yadtq_cluster_up", "1 if the broker and backend answered the last read.")
        up.add_metric([], 0.0 if snap is None else 1.0)
        yield up
        if snap is None:
            return
        depth = core.GaugeMetricFamily("yadtq_queue_depth", "Messages waiting in a queue (Kafka: the "
                                       "consumer group's lag).", labels=["queue"])
        age = core.GaugeMetricFamily("yadtq_queue_oldest_age_seconds", "Seconds the oldest waiting "
                                     "task of a queue has waited since it was submitted.", labels=["queue"])
        for queue in snap.queues:
            if queue.depth is not None:
                depth.add_metric([queue.name], float(queue.depth))
            age.add_metric([queue.name], 0.0 if queue.oldest_created is None
                           else max(0.0, snap.taken - queue.oldest_created))
        yield depth
        yield age
        tasks = snap.tasks
        for name, value, text in (
                ("yadtq_scheduled", tasks.scheduled, "Messages waiting for a countdown, eta or retry."),
                ("yadtq_retrying", tasks.retrying, "Tasks waiting for their next attempt."),
                ("yadtq_processing", tasks.processing, "Tasks running now.")):
            gauge = core.GaugeMetricFamily(name, text)
            gauge.add_metric([], float(value))
            yield gauge
        dead = core.CounterMetricFamily("yadtq_dead_letters", "Messages dead-lettered (never runnable).")
        dead.add_metric([], float(tasks.totals.dead_lettered))
        yield dead
        workers = core.GaugeMetricFamily("yadtq_workers", "Workers by status.", labels=["status"])
        for status in ("alive", "unresponsive", "offline"):
            workers.add_metric([status], float(sum(1 for w in snap.workers if w.status == status)))
        yield workers
        if self.totals:
            total = core.CounterMetricFamily("yadtq_tasks", "Tasks that entered each state, cluster-wide "
                                             "(task=\"\": all tasks).", labels=["task", "state"])
            for state, value in (("success", tasks.totals.succeeded), ("failed", tasks.totals.failed),
                                 ("retrying", tasks.totals.retried), ("revoked", tasks.totals.revoked)):
                total.add_metric(["", state], float(value))
            yield total


def exposition(registry: Any) -> bytes:
    """The registry in Prometheus' text format."""
    return _client().generate_latest(registry)  # type: ignore[no-any-return]


def serve_worker_metrics(app: YADTQ, port: int, queues: Sequence[str], host: str = "0.0.0.0") -> TaskMetrics:
    """Serve a worker's metrics on ``http://host:port/metrics`` from a daemon thread.

    Raises:
        ConfigurationError: prometheus_client is missing or the port cannot be bound.
    """
    client = _client()
    registry = new_registry()
    metrics = TaskMetrics(registry)
    registry.register(ClusterCollector(app, queues))
    try:
        client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    logger.info("metrics on http://%s:%d/metrics", host, port)
    return metrics
