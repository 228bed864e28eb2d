"""An event loop in a thread of its own, and running one attempt of an ``async def`` task on it.

The asyncio pool runs every task through :func:`execute_async`; the thread pool
hands its ``async def`` tasks to a :class:`LoopThread` too, so a coroutine never
occupies a thread while it awaits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..envelope import Envelope
from ..exceptions import TimeLimitExceeded
from ..task import reset_current_request, set_current_request
from .executor import Outcome, error_info, execute, prepare

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: Why a coroutine was cancelled on purpose.
TIME_LIMIT = "time_limit"
REVOKED = "revoked"


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, name: str = "yadtq-loop") -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the loop (from any thread); the loop keeps a reference until it ends."""
        def create() -> None:
            task = self.loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self.loop.call_soon_threadsafe(create)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs (abandoned, as with the other pools) and stop the loop."""
        if not self._thread.is_alive():
            return

        def shutdown() -> None:
            for task in list(self._tasks):
                task.cancel()
            self.loop.stop()

        self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout)


def time_limit_of(app: YADTQ, envelope: Envelope) -> Optional[float]:
    """The hard time limit of one attempt: the envelope's, else the task's."""
    limit = envelope.options.get("time_limit")
    task = app.tasks.get(envelope.task)
    if limit is None and task is not None:
        limit = task.options.time_limit
    return float(limit) if limit else None


class Interruptible:
    """Awaits a coroutine, and can make its current ``await`` raise a chosen exception.

    ``interrupt(exc)`` cancels the asyncio task awaiting it; the ``CancelledError``
    that asyncio then throws in is replaced by ``exc`` on its way into the coroutine,
    so the task sees e.g. ``SoftTimeLimitExceeded`` where it waits, and may catch it.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._pending: Optional[BaseException] = None
        self._task: Optional[asyncio.Task[Any]] = None
        #: Why the awaiting task was cancelled on purpose (``time_limit``, ``revoked``).
        self.reason: Optional[str] = None

    def __await__(self) -> Interruptible:
        self._task = asyncio.current_task()
        return self

    def __iter__(self) -> Interruptible:
        return self

    def __next__(self) -> Any:
        return self._coro.send(None)

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = typ if isinstance(typ, BaseException) else (val if isinstance(val, BaseException)
                                                           else typ())
        if self._pending is not None and isinstance(exc, asyncio.CancelledError):
            exc, self._pending = self._pending, None
            if self._task is not None and hasattr(self._task, "uncancel"):
                self._task.uncancel()  # the cancel was only the way in (Python 3.11+)
        return self._coro.throw(exc)

    def close(self) -> None:
        self._coro.close()

    def interrupt(self, exc: BaseException) -> None:
        """Raise ``exc`` at the coroutine's current ``await`` (call on the loop)."""
        if self._task is not None and not self._task.done():
            self._pending = exc
            self._task.cancel()

    def cancel(self, reason: str) -> None:
        """Cancel the coroutine with ``CancelledError``, remembering why (call on the loop)."""
        if self._task is not None and not self._task.done():
            self.reason = reason
            self._task.cancel()


#: Coroutines running now, by task id, with their loops (for ``revoke(terminate=True)``).
_running: dict[str, tuple[asyncio.AbstractEventLoop, Interruptible]] = {}
_running_lock = threading.Lock()


def cancel_coroutine(task_id: str) -> bool:
    """Cancel the coroutine running ``task_id`` here (it ends ``revoked``); whether one was."""
    with _running_lock:
        found = _running.get(task_id)
    if found is None:
        return False
    loop, running = found
    try:
        loop.call_soon_threadsafe(running.cancel, REVOKED)
    except RuntimeError:  # its loop is closed
        return False
    return True


async def execute_async(app: YADTQ, envelope: Envelope, worker: Optional[str],
                        sync_executor: Optional[concurrent.futures.Executor] = None) -> Outcome:
    """Run one attempt on the running loop: an ``async def`` task as a coroutine of this
    loop (its ``time_limit`` enforced by cancelling it), a plain one in ``sync_executor``.

    Same outcomes as :func:`executor.execute`.
    """
    attempt = prepare(app, envelope, worker)
    if isinstance(attempt, Outcome):
        return attempt
    if not attempt.task.is_async:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(sync_executor, execute, app, envelope, worker)
    limit = time_limit_of(app, envelope)
    token = set_current_request(attempt.request)  # this asyncio task's own context
    timers: list[asyncio.TimerHandle] = []
    running = Interruptible(attempt.call())
    with _running_lock:
        _running[envelope.id] = (asyncio.get_running_loop(), running)
    try:
        if limit:
            timers.append(asyncio.get_running_loop().call_later(limit, running.cancel, TIME_LIMIT))
        try:
            value = await running
        except asyncio.CancelledError:
            if running.reason == REVOKED:
                return attempt.revoked()
            if running.reason != TIME_LIMIT:
                raise
            exc = TimeLimitExceeded(f"task {envelope.task}[{envelope.id}] exceeded its time limit "
                                    f"of {limit} s")
            logger.error("%s; cancelled", exc, extra={"task_id": envelope.id, "task": envelope.task})
            return attempt.failed(exc, with_traceback=False)
    except Exception as exc:
        return attempt.raised(exc)
    finally:
        for timer in timers:
            timer.cancel()
        with _running_lock:
            _running.pop(envelope.id, None)
        reset_current_request(token)
    return attempt.concluded(value)


async def run_attempt(app: YADTQ, envelope: Envelope, worker: Optional[str],
                      sync_executor: Optional[concurrent.futures.Executor] = None) -> Outcome:
    """:func:`execute_async`, with any exception but a cancellation turned into a failure
    (a task raising ``SystemExit`` must not stop the loop). A cancellation propagates:
    the pool is stopping and abandons the task, which is then delivered again."""
    try:
        return await execute_async(app, envelope, worker, sync_executor)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        now = time.time()
        return Outcome(envelope.id, states.FAILED, now, now, error=error_info(exc))
