"""An app traced with OpenTelemetry (tests/contrib/test_otel.py).

In a worker process (``YADTQ_TEST_SPANS`` set) its spans are written to that file,
one JSON object a line, as each span ends.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from yadtq import YADTQ
from yadtq.contrib.otel import instrument

app = YADTQ("otel")


class FileExporter(SpanExporter):
    """Appends each span to a file as a JSON line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock, open(self.path, "a") as out:
            for span in spans:
                assert span.context is not None
                out.write(json.dumps({
                    "name": span.name, "kind": span.kind.name,
                    "trace_id": span.context.trace_id, "span_id": span.context.span_id,
                    "parent_id": span.parent.span_id if span.parent is not None else None,
                    "status": span.status.status_code.name,
                    "attributes": dict(span.attributes or {}),
                }) + "\n")
        return SpanExportResult.SUCCESS


if os.environ.get("YADTQ_TEST_SPANS"):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["YADTQ_TEST_SPANS"])))
    instrument(app, tracer_provider=provider)
    tracer = provider.get_tracer("otel_app")
else:
    tracer = trace.get_tracer("otel_app")


@app.task
def add(x: int, y: int) -> int:
    with tracer.start_as_current_span("inside add"):  # a child of the task's process span
        return x + y


@app.task(max_retries=1, retry_delay=0.1, retry_jitter=False)
def boom() -> None:
    raise ValueError("boom")
