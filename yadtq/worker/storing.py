"""How the worker's loop stores what it learns: backend calls retried while the
backend is down, outcomes bounded by ``result_max_bytes``, and log fields of a task."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Optional, TypeVar

from .. import states
from ..envelope import Envelope
from ..exceptions import SerializationError, YADTQError
from ..transports.base import ErrorInfo
from .executor import Outcome
from .links import Link

logger = logging.getLogger(__name__)

T = TypeVar("T")


def outcome_size(outcome: Outcome) -> int:
    """Roughly the bytes an outcome adds to a backend round trip."""
    size = len(outcome.result or b"")
    if outcome.error is not None:
        size += len(outcome.error.message) + len(outcome.error.traceback or "")
    return size


def bounded(envelope: Envelope, outcome: Outcome, limit: int) -> Outcome:
    """``outcome``, or a permanent failure if its result is larger than ``limit`` bytes
    (``result_max_bytes``): one oversized result must not make its batch unstorable."""
    size = len(outcome.result or b"")
    if limit <= 0 or size <= limit:
        return outcome
    message = (f"the result of {envelope.task}[{envelope.id}] is {size} bytes, more than "
               f"result_max_bytes ({limit}); return a reference (a path, a key) instead")
    logger.error("%s", message, extra=task_fields(envelope))
    return replace(outcome, state=states.FAILED, result=None, retry_eta=None,
                   error=ErrorInfo(f"yadtq.exceptions.{SerializationError.__name__}", message, [message]))


def persist(what: str, call: Callable[[], T], stop: threading.Event, link: Optional[Link] = None) -> T:
    """``call()``, retried with backoff while the transport is down.

    Once ``stop`` is set it gives up after a few more tries and raises: the
    deliveries concerned are then not reported done, so they are delivered again.
    """
    delay = 0.1
    while True:
        try:
            value = call()
        except YADTQError as exc:
            if link is not None:
                link.failed(exc)  # logs the outage once; each retry only at debug level
            if stop.is_set() and delay > 1:
                raise
            level = logging.WARNING if link is None and delay == 0.1 else logging.DEBUG
            logger.log(level, "%s failed (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            if link is not None:
                link.ok()
            return value


def task_fields(envelope: Envelope) -> dict[str, Any]:
    """Log record fields that identify a task (``extra=``)."""
    return {"task_id": envelope.id, "task": envelope.task}
