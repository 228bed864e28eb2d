"""OpenTelemetry tracing (the ``yadtq[otel]`` extra; docs/tracing.md).

``instrument(app)`` opts an app in, in every process that sends or runs its tasks
(call it where the app is defined, so the worker and its children do too):

- sending a task (``delay``, ``apply_async``, ``send_task``) makes a ``PRODUCER``
  span ``send <task name>`` and carries its W3C trace context with the task: in the
  envelope (``options["trace"]``, so retries, countdowns and process-pool children
  keep it) and as ``traceparent``/``tracestate`` message headers (Kafka headers;
  stored with the row on SQLite) for tools that read them;
- running an attempt makes a ``CONSUMER`` span ``process <task name>``, a child of
  the send span, current while the task runs (spans the task makes are its
  children), ended with the attempt's state.

Attributes follow OpenTelemetry's messaging conventions: ``messaging.system`` (the
broker's scheme: ``kafka``, ``sqlite``...), ``messaging.destination.name`` (the
queue), ``messaging.operation.type``/``.name``, ``messaging.message.id`` (the task
id), plus ``yadtq.task.name`` and ``yadtq.task.retries``.

Nothing here is imported unless ``instrument`` is called: an app that is not
instrumented pays nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

from .. import signals, states
from ..exceptions import ConfigurationError
from ..task import current_request

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - the extra is missing
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ..app import YADTQ
    from ..task import Task

logger = logging.getLogger(__name__)

#: Key of the trace context in an envelope's options.
TRACE_OPTION = "trace"
#: W3C Trace Context header names (https://www.w3.org/TR/trace-context/).
TRACE_HEADERS = ("traceparent", "tracestate")

_SYSTEM, _DESTINATION, _MESSAGE_ID = "messaging.system", "messaging.destination.name", "messaging.message.id"
_OPERATION_TYPE, _OPERATION_NAME = "messaging.operation.type", "messaging.operation.name"
_TASK_NAME, _TASK_RETRIES = "yadtq.task.name", "yadtq.task.retries"


class Instrumentation:
    """The tracing of one app: what :func:`instrument` returns; :meth:`uninstrument` undoes it."""

    def __init__(self, app: YADTQ, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer
        self.system = app.settings.broker_url.partition(":")[0] or "yadtq"
        self._original_submit = app.submit
        self._original_send_canvas = app.send_canvas
        #: Per thread: whether the send hook should describe the current span.
        self._local = threading.local()
        #: Spans of the attempts running in this process, by task id, with their context token.
        self._running: dict[str, tuple[Span, object]] = {}
        self._lock = threading.Lock()

    def _install(self) -> None:
        self.app.submit = self._submit  # type: ignore[method-assign]
        self.app.send_canvas = self._send_canvas  # type: ignore[method-assign]
        self.app.send_hook = self._inject
        signals.task_prerun.connect(self._started)
        signals.task_postrun.connect(self._ended)

    def uninstrument(self) -> None:
        """Stop tracing this app."""
        signals.task_prerun.disconnect(self._started)
        signals.task_postrun.disconnect(self._ended)
        self.app.send_hook = None
        vars(self.app).pop("submit", None)
        vars(self.app).pop("send_canvas", None)
        vars(self.app).pop("_otel", None)

    # ------------------------------------------------------------------ sending
    def _submit(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> Any:
        """``app.submit`` inside a ``send`` span, current while the task is encoded."""
        with self.tracer.start_as_current_span(f"send {name}", kind=SpanKind.PRODUCER, attributes={
                _SYSTEM: self.system, _OPERATION_TYPE: "send", _OPERATION_NAME: "send",
                _TASK_NAME: name}):
            self._local.describe = True  # the hook names the one message of this span
            return self._original_submit(name, args, kwargs, **options)

    def _send_canvas(self, canvas: Any, *args: Any, **kwargs: Any) -> Any:
        """``app.send_canvas`` inside a ``send canvas`` span: its first tasks carry it."""
        with self.tracer.start_as_current_span("send canvas", kind=SpanKind.PRODUCER, attributes={
                _SYSTEM: self.system, _OPERATION_TYPE: "send", _OPERATION_NAME: "send",
                "yadtq.canvas.type": type(canvas).__name__}):
            self._local.describe = False
            return self._original_send_canvas(canvas, *args, **kwargs)

    def _inject(self, task_id: str, queue: str, options: dict[str, Any]) -> dict[str, bytes]:
        """The app's send hook: put the current trace context in the task's options and
        return it as message headers."""
        if getattr(self._local, "describe", False):
            self._local.describe = False
            span = trace.get_current_span()
            span.set_attribute(_MESSAGE_ID, task_id)
            span.set_attribute(_DESTINATION, queue)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier:
            return {}
        options[TRACE_OPTION] = carrier
        return {k: v.encode() for k, v in carrier.items() if k in TRACE_HEADERS}

    # ------------------------------------------------------------------ running
    def _started(self, task_id: str, task: Task[Any, Any], **_: Any) -> None:
        if task.app is not self.app:
            return
        request = current_request()
        carrier = request.options.get(TRACE_OPTION) if request is not None else None
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        attributes: dict[str, Any] = {
            _SYSTEM: self.system, _OPERATION_TYPE: "process", _OPERATION_NAME: "process",
            _MESSAGE_ID: task_id, _TASK_NAME: task.name}
        if request is not None:
            attributes[_DESTINATION] = request.queue
            attributes[_TASK_RETRIES] = request.retries
        span = self.tracer.start_span(f"process {task.name}", context=parent, kind=SpanKind.CONSUMER,
                                      attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._running[task_id] = (span, token)

    def _ended(self, task_id: str, task: Task[Any, Any], state: str, result: Any, **_: Any) -> None:
        if task.app is not self.app:
            return
        with self._lock:
            entry = self._running.pop(task_id, None)
        if entry is None:
            return
        span, token = entry
        span.set_attribute("yadtq.task.state", state)
        if isinstance(result, BaseException):
            span.record_exception(result)
        if state == states.FAILED:
            span.set_status(Status(StatusCode.ERROR, f"{type(result).__name__}: {result}"
                                   if isinstance(result, BaseException) else "failed"))
        span.end()
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:  # pragma: no cover - ended in another context: nothing to restore
            logger.debug("trace context of task %s not detached", task_id, extra={"task_id": task_id})


def instrument(app: YADTQ, tracer_provider: Optional[TracerProvider] = None) -> Instrumentation:
    """Trace sending and running ``app``'s tasks with OpenTelemetry (see the module's
    docstring). Uses the global tracer provider unless one is given; calling it again
    returns the same :class:`Instrumentation`.

    Raises:
        ConfigurationError: the OpenTelemetry API is not installed.
    """
    if trace is None:
        raise ConfigurationError("tracing needs OpenTelemetry: pip install 'yadtq[otel]'")
    existing = vars(app).get("_otel")
    if isinstance(existing, Instrumentation):
        return existing
    from .. import __version__

    tracer = trace.get_tracer("yadtq", __version__, tracer_provider=tracer_provider)
    instrumentation = Instrumentation(app, tracer)
    instrumentation._install()
    app._otel = instrumentation  # type: ignore[attr-defined]
    return instrumentation
