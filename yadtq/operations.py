"""What an operator does to a running cluster, as plain functions: revoke, retry, requeue
dead letters, send control commands. ``yadtq`` commands and the dashboard both call these.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from . import states
from .envelope import decode, encode
from .exceptions import BrokerUnavailable, ConfigurationError, ProtocolError
from .task_ids import new_task_id
from .transports.base import (
    CONTROL_POOL_GROW,
    CONTROL_POOL_SHRINK,
    CONTROL_SHUTDOWN,
    CONTROL_TERMINATE,
    DeadLetter,
    FailedMessage,
    Message,
)

if TYPE_CHECKING:
    from .app import YADTQ

logger = logging.getLogger(__name__)

CONTROL_OPS = (CONTROL_SHUTDOWN, CONTROL_POOL_GROW, CONTROL_POOL_SHRINK)
#: Seconds to wait for the broker to confirm republished messages.
FLUSH_TIMEOUT = 30.0


def live_workers(app: YADTQ) -> list[str]:
    """Names of the workers whose heartbeat is fresh, sorted."""
    now = time.time()
    return sorted(w.worker for w in app.backend.workers() if app.worker_state(w, now) == "alive")


def revoke(app: YADTQ, task_id: str, *, terminate: bool = False) -> list[str]:
    """Revoke a task: it never starts if it has not. With ``terminate``, a running task is
    stopped too: through ``AsyncResult.revoke(terminate=True)`` where this yadtq has it,
    else by asking every live worker over the control channel (honoured by workers whose
    pool can stop a running task). Returns the workers asked that way (none otherwise)."""
    result = app.AsyncResult(task_id)
    if terminate and "terminate" in inspect.signature(result.revoke).parameters:
        result.revoke(terminate=True)  # type: ignore[call-arg]  # where execution control has it
        return []
    result.revoke()
    if not terminate:
        return []
    workers = live_workers(app)
    if workers:
        app.backend.send_control(workers, {"op": CONTROL_TERMINATE, "task_id": task_id,
                                           "sent": time.time()})
    return workers


def control(app: YADTQ, op: str, *, n: Optional[int] = None, worker: Optional[str] = None) -> list[str]:
    """Queue a control command for ``worker``, or for every live worker; returns their names.

    Raises:
        ConfigurationError: an unknown command or worker, a bad count, or no live worker.
    """
    if op not in CONTROL_OPS:
        raise ConfigurationError(f"unknown control command {op!r} (use {', '.join(CONTROL_OPS)})")
    if op != CONTROL_SHUTDOWN and (n is None or n < 1):
        raise ConfigurationError(f"{op} needs a count of at least 1")
    if worker is not None:
        known = sorted(w.worker for w in app.backend.workers())
        if worker not in known:
            raise ConfigurationError(f"no worker named {worker!r} (known: {', '.join(known) or 'none'})")
        workers = [worker]
    else:
        workers = live_workers(app)
        if not workers:
            raise ConfigurationError("no live worker to send it to")
    command: dict[str, Any] = {"op": op, "sent": time.time()}
    if n is not None:
        command["n"] = n
    app.backend.send_control(workers, command)
    return workers


# --------------------------------------------------------------------------- retry


def retry(app: YADTQ, task_id: str) -> str:
    """Run a failed task again under a new id (returned); its message leaves the kept ones,
    so retrying it twice is refused.

    Raises:
        ConfigurationError: the task is unknown, not failed, or its message is not kept.
    """
    record = app.backend.get([task_id])[0]
    if record is None:
        raise ConfigurationError(f"no task {task_id} (unknown, or its result expired)")
    if record.state != states.FAILED:
        raise ConfigurationError(f"task {task_id} is {record.state}: only failed tasks can be retried")
    (kept,) = app.backend.take_failed([task_id])
    if kept is None:
        raise ConfigurationError(
            f"the message of failed task {task_id} is not kept: retried already, expired, or it "
            "never ran (a dead letter: see yadtq dlq)")
    return resubmit(app, kept)


def failed_to_retry(app: YADTQ, name: Optional[str] = None, limit: int = 1000) -> list[FailedMessage]:
    """Kept failed tasks, newest first, whose name matches the glob ``name`` (if given)."""
    found = app.backend.failed_messages(limit)
    if name:
        found = [m for m in found if fnmatch.fnmatchcase(m.name, name)
                 or fnmatch.fnmatchcase(m.name.rpartition(".")[2], name)]
    return found


def retry_many(app: YADTQ, task_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Retry kept failed tasks; ``(old id, new id)`` for each one still kept when taken."""
    done = []
    for kept in app.backend.take_failed(list(task_ids)):
        if kept is not None:
            done.append((kept.task_id, resubmit(app, kept)))
    return done


def resubmit(app: YADTQ, kept: FailedMessage) -> str:
    """Publish a kept message again as a new task (attempt 0, due now); keeps it again if the
    broker refuses, so it can be retried later."""
    try:
        envelope = decode(kept.body, app.settings.secret_key)
    except ProtocolError as exc:
        raise ConfigurationError(f"the kept message of task {kept.task_id} is unreadable: {exc}") from None
    now = time.time()
    fresh = replace(envelope, id=new_task_id(), retries=0, eta=None, expires=None, created=now)
    message = Message(fresh.queue, encode(fresh, app.settings.secret_key), fresh.routing_key(),
                      fresh.headers())
    try:
        app.broker.publish([message])
        left = app.broker.flush(FLUSH_TIMEOUT)
        if left:
            raise BrokerUnavailable(f"retry of {kept.task_id} not confirmed by the broker")
    except BrokerUnavailable:
        app.backend.keep_failed([kept])
        raise
    logger.info("task %s[%s] retried as %s", fresh.task, kept.task_id, fresh.id,
                extra={"task_id": fresh.id, "task": fresh.task})
    return fresh.id


# --------------------------------------------------------------------------- dead letters


def find_dead_letters(app: YADTQ, ids: Sequence[str], limit: int = 10_000) -> list[DeadLetter]:
    """The dead letters named by their own id or by their task's id.

    Raises:
        ConfigurationError: an id names none.
    """
    letters = app.broker.list_dead_letters(limit)
    found = []
    for wanted in ids:
        match = [d for d in letters if d.id == wanted or d.task_id == wanted]
        if not match:
            raise ConfigurationError(f"no dead letter {wanted!r}")
        found += [d for d in match if d not in found]
    return found


def requeue_dead_letters(app: YADTQ, letters: Optional[Sequence[DeadLetter]] = None) -> list[DeadLetter]:
    """Send dead letters (``None``: every one) back to their queues; returns those requeued.

    A task recorded ``failed`` when it was dead-lettered is forgotten first, so that its
    requeued message runs instead of being skipped as finished.
    """
    chosen = list(letters) if letters is not None else app.broker.list_dead_letters(10_000)
    task_ids = [d.task_id for d in chosen if d.task_id]
    records = app.backend.get(task_ids) if task_ids else []
    stale = [r.task_id for r in records if r is not None and r.state == states.FAILED]
    if stale:
        app.backend.forget(stale)
    return app.broker.requeue_dead_letters(None if letters is None else [d.id for d in chosen])
