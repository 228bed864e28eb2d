"""Waiting for a task from asyncio through a blocking ``wait``: the default of
:meth:`~yadtq.transports.base.ResultBackend.wait_async`, for backends without an asyncio
client."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, Callable, Optional

from .types import TaskRecord

#: Seconds one blocking wait of :meth:`ResultBackend.wait_async`'s default lasts.
ASYNC_WAIT_SLICE = 1.0


async def wait_in_thread(wait: Callable[[str, Optional[float]], Optional[TaskRecord]], task_id: str,
                         timeout: Optional[float]) -> Optional[TaskRecord]:
    """Await ``wait(task_id, timeout)`` run in a thread of its own, in slices of
    :data:`ASYNC_WAIT_SLICE` seconds so that a cancelled caller frees its thread soon."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Optional[TaskRecord]] = loop.create_future()
    deadline = None if timeout is None else time.monotonic() + timeout

    def deliver(outcome: Any, failed: bool) -> None:
        if not future.done():
            if failed:
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def hand_off() -> None:
        outcome: Any = None
        failed = False
        try:
            while not future.done():  # done: the caller was cancelled
                remaining = None if deadline is None else deadline - time.monotonic()
                piece = ASYNC_WAIT_SLICE if remaining is None else max(
                    0.0, min(remaining, ASYNC_WAIT_SLICE))
                outcome = wait(task_id, piece)
                if outcome is not None or (remaining is not None and remaining <= piece):
                    break
        except BaseException as exc:  # handed over to the awaiting coroutine
            outcome, failed = exc, True
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, outcome, failed)

    threading.Thread(target=hand_off, name=f"yadtq-wait-{task_id[-8:]}", daemon=True).start()
    return await future
