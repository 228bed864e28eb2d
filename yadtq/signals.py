"""Hooks into the life of tasks and workers: connect a function, it is called with keyword arguments.

```python
from yadtq import signals

@signals.task_failure.connect
def report(task_id, task, exception, traceback, **extra):
    sentry_sdk.capture_exception(exception)
```

- ``task_prerun(task_id, task, args, kwargs)``: before each attempt.
- ``task_postrun(task_id, task, args, kwargs, state, result)``: after each attempt;
  ``result`` is the return value, or the exception.
- ``task_success(task_id, task, result)``: after an attempt that succeeded.
- ``task_failure(task_id, task, exception, traceback)``: after the attempt that failed
  for good; ``traceback`` is text.
- ``task_retry(task_id, task, reason, eta)``: after an attempt that will be retried;
  ``reason`` is the exception, ``eta`` when the next attempt is due (epoch seconds).
- ``worker_ready(worker)``: once, when the worker starts consuming (the ``Worker``).
- ``worker_shutdown(worker)``: once, when the worker has stopped (the ``Worker``).
- ``worker_process_init(worker)``: in each process-pool child as it starts (the
  worker's name).

``task`` is the :class:`yadtq.Task` (``task.name`` is its registered name). Task
signals are sent in the process and thread (or coroutine) that runs the task, so a
process-pool worker calls them in its children: connect them at import time of the
app's module. An attempt a child cannot report (killed by its hard ``time_limit``, a
signal or the OOM killer) is reported by the worker process instead, with the same
arguments. A receiver that raises is logged (a child's log records reach the worker's
log) and never changes the task's outcome.
Receivers should accept ``**extra`` so that arguments added later do not break them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional, TypeVar, overload

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class Signal:
    """A named hook: receivers are called in connection order with keyword arguments."""

    def __init__(self, name: str, arguments: tuple[str, ...]) -> None:
        self.name = name
        #: The keyword arguments every receiver gets.
        self.arguments = arguments
        self._receivers: tuple[Callable[..., Any], ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal {self.name}({', '.join(self.arguments)})>"

    @overload
    def connect(self, receiver: F) -> F: ...

    @overload
    def connect(self, receiver: None = None) -> Callable[[F], F]: ...

    def connect(self, receiver: Optional[F] = None) -> Any:
        """Call ``receiver(**arguments)`` on every send; returns it (so it is a decorator,
        with or without parentheses). Connecting one function twice keeps one."""
        if receiver is None:
            return self.connect
        with self._lock:
            if receiver not in self._receivers:
                self._receivers = (*self._receivers, receiver)
        return receiver

    def disconnect(self, receiver: Callable[..., Any]) -> None:
        """Stop calling ``receiver`` (no error if it was not connected)."""
        with self._lock:
            self._receivers = tuple(r for r in self._receivers if r != receiver)

    @property
    def receivers(self) -> tuple[Callable[..., Any], ...]:
        return self._receivers

    def send(self, **arguments: Any) -> None:
        """Call every receiver; one that raises is logged and the others still run."""
        for receiver in self._receivers:  # a snapshot: connecting meanwhile is safe
            try:
                receiver(**arguments)
            except Exception:
                task_id = arguments.get("task_id")
                logger.exception("receiver %s of signal %s raised; ignored",
                                 getattr(receiver, "__qualname__", receiver), self.name,
                                 extra={"task_id": task_id} if task_id else None)


task_prerun = Signal("task_prerun", ("task_id", "task", "args", "kwargs"))
task_postrun = Signal("task_postrun", ("task_id", "task", "args", "kwargs", "state", "result"))
task_success = Signal("task_success", ("task_id", "task", "result"))
task_failure = Signal("task_failure", ("task_id", "task", "exception", "traceback"))
task_retry = Signal("task_retry", ("task_id", "task", "reason", "eta"))
worker_ready = Signal("worker_ready", ("worker",))
worker_shutdown = Signal("worker_shutdown", ("worker",))
worker_process_init = Signal("worker_process_init", ("worker",))

__all__ = [
    "Signal",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_retry",
    "task_success",
    "worker_process_init",
    "worker_ready",
    "worker_shutdown",
]
