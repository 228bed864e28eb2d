"""``yadtq.contrib.otel``: a web request's trace continues into the task a real worker runs."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.worker.procs import running_workers, wait_ready, worker_env

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yadtq import YADTQ
from yadtq.contrib.otel import instrument

pytestmark = pytest.mark.timeout(180)
Traced = tuple[ModuleType, dict[str, str], InMemorySpanExporter]
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "5"}


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.redis,
                                                               pytest.mark.integration])])
def traced(request: pytest.FixtureRequest, unique: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Traced]:
    """The traced app in this process (spans kept in memory) and a worker's environment
    (spans written to ``spans.jsonl``)."""
    if request.param == "sqlite":
        broker = backend = f"sqlite:///{tmp_path / 'yadtq.db'}"
        settings = dict(FAST)
    else:
        broker = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
        backend = request.getfixturevalue("redis_url")
        settings = {**FAST, "default_queue": f"otel-{unique}", "partitions": "1",
                    "backend_options": json.dumps({"prefix": f"otel-{unique}"})}
    env = worker_env(broker, backend, tmp_path, **settings)
    env["YADTQ_TEST_SPANS"] = str(tmp_path / "spans.jsonl")
    for key, value in env.items():
        if key.startswith("YADTQ_") and key != "YADTQ_TEST_SPANS":
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("YADTQ_TEST_SPANS", raising=False)
    module = importlib.reload(importlib.import_module("tests.apps.otel_app"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(module.app, tracer_provider=provider)
    module.web_tracer = provider.get_tracer("web")
    try:
        yield module, env, exporter
    finally:
        module.app.close()


def _worker_spans(path: Path, count: int, name: str, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        found = [s for s in spans if s["name"] == name]
        if len(found) >= count:
            return spans
        assert time.monotonic() < deadline, f"{count} spans {name!r} expected, got {spans}"
        time.sleep(0.05)


def test_run_span_is_a_child_of_the_send_span(
        traced: Traced, tmp_path: Path) -> None:
    module, env, exporter = traced
    app = module.app
    with running_workers(1, "tests.apps.otel_app", env, tmp_path) as workers:
        wait_ready(workers, app.get_worker_status, timeout=60)
        with module.web_tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as web:
            result = module.add.delay(2, 3)
            failing = module.boom.delay()
            chained = (module.add.s(1, 2) | module.add.s(4)).apply_async()
        assert result.get(timeout=60) == 5
        assert chained.get(timeout=60) == 7
        with pytest.raises(ValueError):
            failing.get(timeout=60)
        spans = _worker_spans(tmp_path / "spans.jsonl", 2, "process tests.apps.otel_app.boom")

    web_context = web.get_span_context()
    sent = {s.attributes["messaging.message.id"]: s for s in exporter.get_finished_spans()
            if s.name.startswith("send ") and s.name != "send canvas"}
    send = sent[result.id]
    assert send.kind == trace.SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == web_context.span_id
    assert send.context.trace_id == web_context.trace_id
    assert send.attributes["messaging.destination.name"] == app.settings.default_queue
    assert send.attributes["messaging.system"] == app.settings.broker_url.partition(":")[0]

    (run,) = [s for s in spans if s["attributes"].get("messaging.message.id") == result.id]
    assert run["kind"] == "CONSUMER"
    assert run["trace_id"] == web_context.trace_id  # the web request's trace continues
    assert run["parent_id"] == send.context.span_id
    assert run["attributes"]["messaging.message.id"] == result.id
    assert run["attributes"]["messaging.destination.name"] == app.settings.default_queue
    assert run["attributes"]["yadtq.task.name"] == "tests.apps.otel_app.add"
    (inner,) = [s for s in spans if s["name"] == "inside add" and s["parent_id"] == run["span_id"]]
    assert inner["parent_id"] == run["span_id"]  # current while the task runs

    # A chain: its first step carries the canvas's send span, and its next step (sent by
    # the worker) inherits that context: the whole chain stays in the request's trace.
    (canvas_send,) = [s for s in exporter.get_finished_spans() if s.name == "send canvas"]
    assert canvas_send.parent is not None and canvas_send.parent.span_id == web_context.span_id
    ids = (chained.id, chained.parent.id)
    steps = [s for s in spans if s["attributes"].get("messaging.message.id") in ids]
    assert len(steps) == 2
    assert {(s["trace_id"], s["parent_id"]) for s in steps} == {
        (web_context.trace_id, canvas_send.context.span_id)}

    # Both attempts of a retried task continue the trace of the one send.
    attempts = [s for s in spans if s["name"] == "process tests.apps.otel_app.boom"]
    assert {s["parent_id"] for s in attempts} == {sent[failing.id].context.span_id}
    assert sorted(s["attributes"]["yadtq.task.retries"] for s in attempts) == [0, 1]
    assert sorted(s["status"] for s in attempts) == ["ERROR", "UNSET"]


def test_trace_context_travels_in_message_headers(sqlite_url: str) -> None:
    app = YADTQ("h", broker=sqlite_url, backend=sqlite_url)

    @app.task
    def noop() -> None:
        pass

    provider = TracerProvider()
    instrumentation = instrument(app, tracer_provider=provider)
    assert instrument(app) is instrumentation
    with provider.get_tracer("t").start_as_current_span("request") as span:
        noop.delay()
    delivery = app.broker.peek(app.settings.default_queue)
    assert delivery is not None
    traceparent = delivery.headers["traceparent"].decode()
    assert traceparent.split("-")[1] == format(span.get_span_context().trace_id, "032x")
    instrumentation.uninstrument()
    app.purge()
    with provider.get_tracer("t").start_as_current_span("request"):
        noop.delay()
    delivery = app.broker.peek(app.settings.default_queue)
    assert delivery is not None and "traceparent" not in delivery.headers
    app.close()


def test_not_instrumented_sends_no_trace_context(sqlite_url: str) -> None:
    app = YADTQ("plain", broker=sqlite_url, backend=sqlite_url)

    @app.task
    def noop() -> None:
        pass

    with TracerProvider().get_tracer("t").start_as_current_span("request"):
        noop.delay()
    delivery = app.broker.peek(app.settings.default_queue)
    assert delivery is not None and "traceparent" not in delivery.headers
    app.close()
