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
from .limits import Interruptible, soft_limit_error, soft_limit_of

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
        #: Coroutines handed over by other threads, not yet started on the loop.
        self._pending: list[Coroutine[Any, Any, Any]] = []
        self._pending_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the loop (from any thread); the loop keeps a reference until it ends.

        Coroutines handed over while the loop has not yet taken the earlier ones wait
        with them and start in the same turn: a batch of a thousand claimed tasks wakes
        the loop once, not a thousand times (each wake-up is a write to its self-pipe,
        and a turn of the loop contending for the GIL with the thread that submits).
        """
        with self._pending_lock:
            self._pending.append(coro)
            if len(self._pending) > 1:  # the loop is already woken for the earlier ones
                return
        try:
            self.loop.call_soon_threadsafe(self._start_pending)
        except RuntimeError:  # the loop is closed: nothing will run it
            with self._pending_lock:
                self._pending.remove(coro)
            coro.close()
            raise

    def _start_pending(self) -> None:
        with self._pending_lock:
            coros, self._pending = self._pending, []
        for coro in coros:
            task = self.loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs (abandoned, as with the other pools) and stop the loop."""
        if not self._thread.is_alive():
            return

        def shutdown() -> None:
            with self._pending_lock:
                never_started, self._pending = self._pending, []
            for coro in never_started:  # abandoned before they began: no warning about them
                coro.close()
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
    task = app.tasks.get(envelope.task)
    if task is not None and not task.is_async:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(sync_executor, execute, app, envelope, worker)
    attempt = prepare(app, envelope, worker)
    if isinstance(attempt, Outcome):
        return attempt
    envelope = attempt.envelope  # a chord callback's, with its members' results
    limit = time_limit_of(app, envelope)
    token = set_current_request(attempt.request)  # this asyncio task's own context
    timers: list[asyncio.TimerHandle] = []
    running = Interruptible(attempt.call())
    with _running_lock:
        _running[envelope.id] = (asyncio.get_running_loop(), running)
    try:
        loop = asyncio.get_running_loop()
        if limit:
            timers.append(loop.call_later(limit, running.cancel, TIME_LIMIT))
        soft = soft_limit_of(app, envelope)
        if soft:
            timers.append(loop.call_later(soft, running.interrupt, soft_limit_error(envelope, soft)))
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
