"""Running one task: one envelope in, one :class:`Outcome` out. Knows no transport.

Revocation and expiry are decided before a task gets here (by the consumer's
claim); this module turns a call into success, a retry, or a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

from .. import signals, states
from ..canvas.followups import gather
from ..envelope import Envelope, encode, pack
from ..exceptions import (
    ChordError,
    NotRegistered,
    Retry,
    Revoked,
    SerializationError,
    SoftTimeLimitExceeded,
    WorkerLostError,
)
from ..quick_init import quick_init
from ..retry import retry_delay
from ..running import progress_sender, revocations
from ..task import LazyRequest, Task, reset_current_request, set_current_request
from ..transports.base import ErrorInfo, StateChange
from .limits import run_with_soft_limit, soft_limit, soft_limit_of

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)


@quick_init
@dataclass(frozen=True)
class Outcome:
    """How one attempt of a task ended."""

    task_id: str
    #: ``success``, ``failed``, ``retrying``, or ``revoked`` (stopped by ``revoke(terminate=True)``).
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
    if isinstance(exc, SoftTimeLimitExceeded) and not (
            opts.autoretry_for and issubclass(SoftTimeLimitExceeded, opts.autoretry_for)):
        return False  # like the hard limit: retried only when asked for by name
    if opts.dont_autoretry_for and isinstance(exc, opts.dont_autoretry_for):
        return False
    if opts.autoretry_for:
        return isinstance(exc, opts.autoretry_for)
    return isinstance(exc, Exception)


class Attempt:
    """One attempt of a task being run: what the sync and the async runners share.

    :func:`prepare` makes one (or an :class:`Outcome` when the task cannot run);
    the runner calls the function, then :meth:`concluded` or :meth:`raised`.
    """

    def __init__(self, app: YADTQ, envelope: Envelope, task: Task[Any, Any], worker: Optional[str],
                 started: float) -> None:
        self.app = app
        self.envelope = envelope
        self.task = task
        self.worker = worker
        self.started = started
        self.request = LazyRequest(envelope, worker)

    def call(self) -> Any:
        """Send ``task_prerun``, then call the function (an ``async def`` task gives its
        coroutine)."""
        signals.task_prerun.send(task_id=self.envelope.id, task=self.task, args=self.envelope.args,
                                 kwargs=self.envelope.kwargs)
        return self.task.run(*self.envelope.args, **self.envelope.kwargs)

    def failed(self, exc: BaseException, with_traceback: bool = True) -> Outcome:
        """A failure for good (no retry) with ``exc``."""
        outcome = Outcome(self.envelope.id, states.FAILED, self.started, time.time(),
                          error=error_info(exc, with_traceback=with_traceback))
        return self._report(outcome, exc)

    def concluded(self, value: Any) -> Outcome:
        """The outcome of a call that returned ``value`` (not stored with ``ignore_result``)."""
        if self.envelope.id in revocations:  # revoked meanwhile: it stays revoked
            return self.revoked()
        try:
            result = None if self.task.options.ignore_result else pack(value)
        except SerializationError as exc:
            return self.failed(SerializationError(f"cannot serialize the result of {self.task.name}: {exc}"))
        outcome = Outcome(self.envelope.id, states.SUCCESS, self.started, time.time(), result=result)
        return self._report(outcome, value)

    def raised(self, exc: Exception) -> Outcome:
        """The outcome of a call that raised ``exc``: a retry or a failure, or ``revoked``
        (never retried) when it was revoked with ``terminate=True`` meanwhile."""
        if isinstance(exc, Revoked) or self.envelope.id in revocations:
            return self.revoked()
        if isinstance(exc, Retry):
            cause = exc.exc or exc
            outcome = _retry_or_fail(self.task, self.envelope, cause, self.started, exc.countdown,
                                     exc.max_retries)
            return self._report(outcome, cause)
        if _should_retry(self.task, exc):
            return self._report(_retry_or_fail(self.task, self.envelope, exc, self.started, None, None),
                                exc)
        return self.failed(exc)

    def revoked(self) -> Outcome:
        """The attempt was stopped because the task was revoked with ``terminate=True``."""
        outcome = revoked_outcome(self.envelope, self.started)
        return self._report(outcome, Revoked(f"task {self.envelope.id} terminated"))

    def _report(self, outcome: Outcome, result: Any) -> Outcome:
        """Send the signals of an ended attempt (``result``: the value, or the exception).
        A receiver that raises is logged by the signal and changes nothing here."""
        progress_sender.finished(self.envelope.id)  # a throttled update left over is of no use now
        _send_ended(self.envelope, self.task, outcome, result)
        return outcome


def _send_ended(envelope: Envelope, task: Task[Any, Any], outcome: Outcome, result: Any) -> None:
    """``task_success``/``task_retry``/``task_failure`` as the outcome says, then ``task_postrun``."""
    task_id = envelope.id
    if outcome.state == states.SUCCESS:
        signals.task_success.send(task_id=task_id, task=task, result=result)
    elif outcome.state == states.RETRYING:
        signals.task_retry.send(task_id=task_id, task=task, reason=result, eta=outcome.retry_eta)
    elif outcome.state == states.FAILED:
        text = outcome.error.traceback if outcome.error else None
        if not text:  # no traceback to give (a time limit): the exception itself, as text
            text = "".join(traceback.format_exception_only(type(result), result))
        signals.task_failure.send(task_id=task_id, task=task, exception=result, traceback=text)
    signals.task_postrun.send(task_id=task_id, task=task, args=envelope.args, kwargs=envelope.kwargs,
                              state=outcome.state, result=result)


def report_lost_attempt(app: YADTQ, envelope: Envelope, outcome: Outcome,
                        exc: BaseException) -> None:
    """Send the signals of an attempt whose process could not: a process-pool child killed
    by its task's hard ``time_limit``, by ``revoke(terminate=True)``, by a signal or the OOM
    killer. The worker (the child's parent) sends them with ``exc`` as the exception, so a
    ``task_failure`` receiver (Sentry, say) hears of these failures too."""
    task = app.tasks.get(envelope.task)
    if task is not None:
        _send_ended(envelope, task, outcome, exc)


def revoked_outcome(envelope: Envelope, started: float) -> Outcome:
    """How an attempt stopped by ``revoke(terminate=True)`` ends: ``revoked``, never retried."""
    return Outcome(envelope.id, states.REVOKED, started, time.time(), error=ErrorInfo(
        "yadtq.exceptions.Revoked", "terminated", ["terminated"]))


def prepare(app: YADTQ, envelope: Envelope, worker: Optional[str] = None) -> Union[Attempt, Outcome]:
    """An attempt at the task an envelope names, or the failure if it cannot run at all
    (``NotRegistered``, arguments that do not fit: never retried)."""
    started = time.time()

    def failed(exc: BaseException) -> Outcome:
        return Outcome(envelope.id, states.FAILED, started, time.time(),
                       error=error_info(exc, with_traceback=False))

    task = app.tasks.get(envelope.task)
    if task is None:
        return failed(NotRegistered(f"task {envelope.task!r} is not registered"))
    if envelope.canvas:
        try:
            envelope = gather(app, envelope)  # a chord's callback: its members' results first
        except ChordError as exc:
            return failed(exc)
        except Exception as exc:  # e.g. the backend is unreachable: try again later
            return _retry_or_fail(task, envelope, exc, started, None, None)
    try:
        _check_arguments(task, envelope)
    except TypeError as exc:
        return failed(exc)
    return Attempt(app, envelope, task, worker, started)


def execute(app: YADTQ, envelope: Envelope, worker: Optional[str] = None) -> Outcome:
    """Run one attempt of the task an envelope names, in this thread.

    Any exception is retried (up to ``max_retries``, default 3) unless the task's
    ``autoretry_for`` narrows that; ``NotRegistered`` and argument mismatches
    fail at once, without retries. An ``async def`` task runs on an event loop of
    its own here (the asyncio pool and the thread pool run them on a shared loop).
    """
    attempt = prepare(app, envelope, worker)
    if isinstance(attempt, Outcome):
        return attempt
    token = set_current_request(attempt.request)
    soft = soft_limit_of(app, envelope)
    try:
        if attempt.task.is_async:  # its own loop: the soft limit strikes at its current await
            value = asyncio.run(run_with_soft_limit(attempt.call(), envelope, soft))
        elif soft:
            with soft_limit(envelope, soft):
                value = attempt.call()
        else:  # most tasks: no context manager to enter and leave
            value = attempt.call()
    except Exception as exc:
        return attempt.raised(exc)
    finally:
        reset_current_request(token)
    return attempt.concluded(value)


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
