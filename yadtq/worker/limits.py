"""Soft time limits: ``SoftTimeLimitExceeded`` raised inside a task that runs too long.

How it is raised depends on where the task runs:

- in a process-pool child (any sync task run in a process's main thread): by a
  ``SIGALRM`` timer, so it interrupts blocking calls such as ``time.sleep``;
- in a coroutine: at its current ``await`` (:class:`Interruptible`), as
  ``SoftTimeLimitExceeded``, never as ``CancelledError``;
- in a pool thread: as an asynchronous exception (``PyThreadState_SetAsyncExc``),
  best effort: it is raised at the thread's next Python bytecode, so a thread
  blocked in one long C call (``time.sleep(60)``, a socket read) sees it only when
  that call returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, Optional

from ..exceptions import SoftTimeLimitExceeded

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..envelope import Envelope

logger = logging.getLogger(__name__)


def soft_limit_of(app: YADTQ, envelope: Envelope) -> Optional[float]:
    """The soft time limit of one attempt: the envelope's, else the task's."""
    limit = envelope.options.get("soft_time_limit")
    task = app.tasks.get(envelope.task)
    if limit is None and task is not None:
        limit = task.options.soft_time_limit
    return float(limit) if limit else None


def _exceeded(envelope: Envelope, seconds: float) -> SoftTimeLimitExceeded:
    return SoftTimeLimitExceeded(f"task {envelope.task}[{envelope.id}] exceeded its soft time "
                                 f"limit of {seconds:g} s")


@contextmanager
def soft_limit(envelope: Envelope, seconds: Optional[float]) -> Iterator[None]:
    """Raise ``SoftTimeLimitExceeded`` in this thread if the block outlasts ``seconds``."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _by_signal(envelope, seconds):
            yield
    else:
        with _by_async_exception(envelope, seconds):
            yield


@contextmanager
def _by_signal(envelope: Envelope, seconds: float) -> Iterator[None]:
    armed = [True]

    def alarm(signum: int, frame: Optional[FrameType]) -> None:
        if armed[0]:
            armed[0] = False
            raise _exceeded(envelope, seconds)

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _by_async_exception(envelope: Envelope, seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    lock = threading.Lock()
    running = [True]

    def fire() -> None:
        import ctypes  # only where a soft limit fires: most workers never load it

        with lock:
            if running[0]:
                logger.warning("task %s[%s] exceeded its soft time limit of %g s: raising "
                               "SoftTimeLimitExceeded in its thread", envelope.task, envelope.id,
                               seconds, extra={"task_id": envelope.id, "task": envelope.task})
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target),
                                                           ctypes.py_object(SoftTimeLimitExceeded))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            running[0] = False
        timer.cancel()


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




async def run_with_soft_limit(coro: Coroutine[Any, Any, Any], envelope: Envelope,
                              seconds: Optional[float]) -> Any:
    """Await ``coro``, raising ``SoftTimeLimitExceeded`` at its current ``await`` past
    ``seconds`` (for a coroutine run by ``asyncio.run`` in a pool thread or child)."""
    running = Interruptible(coro)
    timer = (asyncio.get_running_loop().call_later(seconds, running.interrupt,
                                                   _exceeded(envelope, seconds))
             if seconds else None)
    try:
        return await running
    finally:
        if timer is not None:
            timer.cancel()


def soft_limit_error(envelope: Envelope, seconds: float) -> SoftTimeLimitExceeded:
    """The exception raised at a coroutine's ``await`` when its soft limit passes."""
    return _exceeded(envelope, seconds)
