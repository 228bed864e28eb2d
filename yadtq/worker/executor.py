"""Running one task: one envelope in, one :class:`Outcome` out. Knows no transport.

Revocation and expiry are decided before a task gets here (by the consumer's
claim); this module turns a call into success, a retry, or a failure.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..canvas.followups import gather
from ..envelope import Envelope, encode, pack
from ..exceptions import ChordError, NotRegistered, Retry, SerializationError, WorkerLostError
from ..retry import retry_delay
from ..task import Request, Task, set_current_request
from ..transports.base import ErrorInfo, StateChange

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one attempt of a task ended."""

    task_id: str
    #: ``success``, ``failed`` or ``retrying``.
    state: str
    started: float
    finished: float
    result: Optional[bytes] = None
    error: Optional[ErrorInfo] = None
    #: For ``retrying``: when the next attempt is due.
    retry_eta: Optional[float] = None

    @property
    def runtime(self) -> float:
        return self.finished - self.started


def error_info(exc: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
    """An exception as it travels to the client."""
    cls = type(exc)
    try:
        pack(list(exc.args))
        args: Any = list(exc.args)
    except SerializationError:
        args = [str(exc)]
    tb = "".join(traceback.format_exception(cls, exc, exc.__traceback__)) if with_traceback else None
    return ErrorInfo(type=f"{cls.__module__}.{cls.__qualname__}", message=str(exc), args=args,
                     traceback=tb)


def _check_arguments(task: Task[Any, Any], envelope: Envelope) -> None:
    try:
        task.check_arguments(envelope.args, envelope.kwargs)
    except TypeError as exc:
        raise TypeError(f"{task.name}() {exc}") from None


def _should_retry(task: Task[Any, Any], exc: BaseException) -> bool:
    opts = task.options
    if opts.dont_autoretry_for and isinstance(exc, opts.dont_autoretry_for):
        return False
    if opts.autoretry_for:
        return isinstance(exc, opts.autoretry_for)
    return isinstance(exc, Exception)


def execute(app: YADTQ, envelope: Envelope, worker: Optional[str] = None) -> Outcome:
    """Run one attempt of the task an envelope names.

    Any exception is retried (up to ``max_retries``, default 3) unless the task's
    ``autoretry_for`` narrows that; ``NotRegistered`` and argument mismatches
    fail at once, without retries.
    """
    started = time.time()

    def failed(exc: BaseException, with_traceback: bool = True) -> Outcome:
        return Outcome(envelope.id, states.FAILED, started, time.time(),
                       error=error_info(exc, with_traceback=with_traceback))

    task = app.tasks.get(envelope.task)
    if task is None:
        return failed(NotRegistered(f"task {envelope.task!r} is not registered"), False)
    if envelope.canvas:
        try:
            envelope = gather(app, envelope)  # a chord's callback: its members' results first
        except ChordError as exc:
            return failed(exc, False)
        except Exception as exc:  # e.g. the backend is unreachable: try again later
            return _retry_or_fail(task, envelope, exc, started, None, None)
    try:
        _check_arguments(task, envelope)
    except TypeError as exc:
        return failed(exc, False)

    set_current_request(Request(
        id=envelope.id, task=envelope.task, args=envelope.args, kwargs=envelope.kwargs,
        retries=envelope.retries, queue=envelope.queue, worker=worker, eta=envelope.eta,
        parent_id=envelope.parent_id, root_id=envelope.root_id,
    ))
    try:
        value = task.run(*envelope.args, **envelope.kwargs)
        result = pack(value)
    except Retry as request:
        cause = request.exc or request
        return _retry_or_fail(task, envelope, cause, started, request.countdown, request.max_retries)
    except SerializationError as exc:
        return failed(SerializationError(f"cannot serialize the result of {task.name}: {exc}"))
    except Exception as exc:
        if _should_retry(task, exc):
            return _retry_or_fail(task, envelope, exc, started, None, None)
        return failed(exc)
    finally:
        set_current_request(None)
    return Outcome(envelope.id, states.SUCCESS, started, time.time(), result=result)


def _retry_or_fail(task: Task[Any, Any], envelope: Envelope, exc: BaseException, started: float,
                   countdown: Optional[float], max_retries: Optional[int]) -> Outcome:
    opts = task.options
    limit = max_retries if max_retries is not None else envelope.options.get("max_retries",
                                                                           opts.max_retries)
    finished = time.time()
    if envelope.retries >= limit:
        return Outcome(envelope.id, states.FAILED, started, finished, error=error_info(exc))
    delay = countdown if countdown is not None else retry_delay(
        envelope.retries, backoff=opts.retry_backoff, delay=opts.retry_delay,
        maximum=opts.retry_backoff_max, jitter=opts.retry_jitter,
    )
    try:
        _check_schedulable(envelope.next_attempt(finished + delay))
    except Exception as problem:  # the retry could never be stored: fail now, with the reason
        return Outcome(envelope.id, states.FAILED, started, finished, error=error_info(
            SerializationError(f"cannot schedule a retry of {task.name}: {problem} "
                               f"(after {type(exc).__name__}: {exc})"), with_traceback=False))
    # Due on the backend's clock, which the schedule is kept on (never this host's).
    return Outcome(envelope.id, states.RETRYING, started, finished, error=error_info(exc),
                   retry_eta=task.app.now() + delay)


def _check_schedulable(retry: Envelope) -> None:
    """Raise unless the message of a retry can be built (the recorder builds it; a message
    that cannot be built must fail its task here, never take the recorder down)."""
    encode(retry)
    retry.routing_key()
    retry.headers()


def worker_lost(app: YADTQ, envelope: Envelope, reason: str, started: float) -> Outcome:
    """The outcome of an attempt whose process died under it (a signal, the OOM killer).

    Not the task's own error: it is retried within ``max_retries`` whatever
    ``autoretry_for`` says, like any other failure of the attempt.
    """
    exc = WorkerLostError(reason)
    task = app.tasks.get(envelope.task)
    if task is None:
        return Outcome(envelope.id, states.FAILED, started, time.time(),
                       error=error_info(exc, with_traceback=False))
    return _retry_or_fail(task, envelope, exc, started, None, None)


def execute_eagerly(app: YADTQ, envelope: Envelope) -> list[StateChange]:
    """Run a task in the caller, retries included without waiting (``eager=True``)."""
    changes = []
    while True:
        outcome = execute(app, envelope, "eager")
        changes.append(outcome_change(envelope, outcome, "eager"))
        if outcome.state != states.RETRYING:
            return changes
        envelope = envelope.next_attempt(outcome.retry_eta or time.time())


def outcome_change(envelope: Envelope, outcome: Outcome, worker: str) -> StateChange:
    """The state change that records an outcome."""
    return StateChange(
        task_id=envelope.id, state=outcome.state, timestamp=outcome.finished, worker=worker,
        name=envelope.task, queue=envelope.queue, result=outcome.result, error=outcome.error,
        retries=envelope.retries + 1 if outcome.state == states.RETRYING else envelope.retries,
        eta=outcome.retry_eta,
    )
