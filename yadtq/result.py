"""AsyncResult: a handle on a sent task, to read its state and wait for its result."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar

from . import states
from .envelope import unpack
from .exceptions import BackendUnavailable, BrokerUnavailable, Revoked, rebuild_exception
from .exceptions import TimeoutError as ResultTimeout
from .transports.base import ErrorInfo, StateChange

if TYPE_CHECKING:
    from .app import YADTQ
    from .transports.base import Progress, TaskRecord

R = TypeVar("R")


class AsyncResult(Generic[R]):
    """The state and result of one task, by id. ``str(result)`` is the id."""

    # A loop of ``.delay()`` keeps thousands of these alive: without a ``__dict__`` each
    # takes 88 bytes instead of 120 (benchmarks/handle_memory.py, Python 3.11).
    # ``readahead`` holds a weak reference to each.
    __slots__ = ("__weakref__", "_prefetched", "_ready", "app", "id", "parent")

    def __init__(self, task_id: str, app: YADTQ) -> None:
        self.id = task_id
        self.app = app
        #: The latest ready record this handle read: never answered from (``yadtq retry``
        #: and ``yadtq dlq requeue`` run a ready task again under its id, so every read
        #: asks the backend); it only tells that a broker refusal seen here is superseded.
        self._ready: Optional[TaskRecord] = None
        #: A ready record read together with another result's (``readahead.py``):
        #: ``(record, time.monotonic() when read)``, used once by ``get()`` while fresh.
        self._prefetched: Optional[tuple[TaskRecord, float]] = None
        #: The result this one follows in a chain (an ``AsyncResult`` or a
        #: ``GroupResult``), when it came from a canvas sent here.
        self.parent: Optional[Any] = None

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _record(self) -> Optional[TaskRecord]:
        record = self.app.backend.get([self.id])[0]
        if record is not None and record.state in states.READY_STATES:
            self._ready = record
        return record

    @property
    def state(self) -> str:
        """The task's state; ``queued`` until a worker has seen it. While it runs, the
        custom state it reported with ``update_state`` (as given), if any."""
        record = self._record()
        if record is None:
            return states.QUEUED
        if record.state == states.PROCESSING:
            progress = self._progress(record)
            if progress is not None:
                return progress.state
        return record.state

    status = state

    def _progress(self, record: Optional[TaskRecord]) -> Optional[Progress]:
        """The latest progress of the attempt the record shows (earlier attempts' is stale)."""
        if record is None:
            return None
        progress = self.app.backend.get_progress([self.id])[0]
        return progress if progress is not None and progress.retries == record.retries else None

    @property
    def meta(self) -> Optional[dict[str, Any]]:
        """The latest ``meta`` dict the task reported (``update_state``/``progress``), or ``None``."""
        progress = self._progress(self._record())
        if progress is None or progress.meta is None:
            return None
        meta = unpack(progress.meta)
        return meta if isinstance(meta, dict) else {"value": meta}

    @property
    def progress(self) -> Optional[tuple[Any, Any]]:
        """``(done, total)`` as last reported with ``self.progress(done, total)``, or ``None``."""
        meta = self.meta
        if meta is None or "done" not in meta:
            return None
        return meta["done"], meta.get("total")

    def follow(self, timeout: Optional[float] = None, interval: float = 0.5,
               ) -> Iterator[tuple[str, Optional[dict[str, Any]]]]:
        """Yield ``(state, meta)`` each time either changes, until the task is ready (the
        final state is yielded last). Progress is sampled every ``interval`` seconds
        (workers write it about once a second); the end is noticed by notification.

        Raises:
            yadtq.TimeoutError: not ready within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Optional[tuple[str, Optional[dict[str, Any]]]] = None
        while True:
            record = self._record()
            current = (self.state, self.meta)
            if current != last:
                last = current
                yield current
            if record is not None and record.state in states.READY_STATES:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise ResultTimeout(f"task {self.id} not ready after {timeout} s")
            step = interval if remaining is None else min(interval, remaining)
            self.app.backend.wait(self.id, step)  # returns early once ready

    def ready(self) -> bool:
        """Whether the task has finished (success, failed or revoked)."""
        record = self._record()
        return record is not None and record.state in states.READY_STATES

    def successful(self) -> bool:
        record = self._record()
        return record is not None and record.state == states.SUCCESS

    def failed(self) -> bool:
        record = self._record()
        return record is not None and record.state == states.FAILED

    @property
    def result(self) -> Any:
        """The return value on success, the exception on failure, else ``None``."""
        record = self._record()
        if record is None:
            return None
        if record.state == states.SUCCESS:
            return unpack(record.result) if record.result is not None else None
        if record.state in (states.FAILED, states.REVOKED):
            return self._exception(record)
        return None

    @property
    def traceback(self) -> Optional[str]:
        record = self._record()
        return record.error.traceback if record is not None and record.error else None

    @property
    def retries(self) -> int:
        record = self._record()
        return record.retries if record is not None else 0

    @property
    def worker(self) -> Optional[str]:
        record = self._record()
        return record.worker if record is not None else None

    @property
    def info(self) -> Optional[TaskRecord]:
        """Everything the backend stores about the task."""
        return self._record()

    def get(self, timeout: Optional[float] = None, propagate: bool = True,
            interval: Optional[float] = None) -> R:
        """Wait for the task to finish and return its result.

        Waits by notification from the backend, not by polling; ``interval`` is
        accepted for compatibility and ignored.

        Raises:
            yadtq.TimeoutError: not finished within ``timeout`` seconds.
            BrokerUnavailable: the broker refused the task's message (known in this
                process as soon as the broker reports it; the task is ``failed``).
            Exception: with ``propagate``, the task's own exception (builtin types
                as themselves, others as ``TaskError``), or ``Revoked``.
        """
        return self._get(self.app.readahead.read(self.app.backend, self), timeout, propagate)

    wait = get

    def _get(self, fresh: Optional[TaskRecord], timeout: Optional[float], propagate: bool) -> R:
        """:meth:`get`; ``fresh``: the record just read by the caller (a group reads all of
        its members' at once), used if ready instead of reading it again."""
        refused = self._refused()
        if refused is not None:
            if propagate:
                raise refused
            return refused  # type: ignore[return-value]
        try:
            if fresh is not None and fresh.state in states.READY_STATES:
                record: Optional[TaskRecord] = fresh
            else:
                record = self.app.backend.wait(self.id, timeout)
        except BackendUnavailable:
            refused = self._refused()
            if refused is None:
                raise
            record = None
        return self._settle(record, timeout, propagate, refused)

    async def aget(self, timeout: Optional[float] = None, propagate: bool = True) -> R:
        """``get`` for asyncio code: waits without blocking the event loop, woken by
        notification. ``await result`` is ``await result.aget()``.

        Raises:
            yadtq.TimeoutError: not finished within ``timeout`` seconds.
            Exception: as :meth:`get`.
        """
        refused = self._refused()
        if refused is not None:
            if propagate:
                raise refused
            return refused  # type: ignore[return-value]
        try:
            record = await self.app.backend.wait_async(self.id, timeout)
        except BackendUnavailable:
            refused = self._refused()
            if refused is None:
                raise
            record = None
        return self._settle(record, timeout, propagate, refused)

    def __await__(self) -> Generator[Any, None, R]:
        return self.aget().__await__()

    def _settle(self, record: Optional[TaskRecord], timeout: Optional[float], propagate: bool,
                refused: Optional[BrokerUnavailable]) -> R:
        if record is None:
            refused = refused or self._refused()
            if refused is None:
                raise ResultTimeout(f"task {self.id} not ready after {timeout} s")
            if propagate:
                raise refused
            return refused  # type: ignore[return-value]
        self._ready = record
        if record.state == states.SUCCESS:
            return unpack(record.result) if record.result is not None else None  # type: ignore[no-any-return, return-value]
        exc = self._exception(record)
        if propagate:
            raise exc
        return exc  # type: ignore[return-value]

    def _refused(self) -> Optional[BrokerUnavailable]:
        """The error to raise when this process saw the task's message refused by the
        broker and the backend holds no outcome that says otherwise."""
        if self._ready is not None:
            return None
        error = self.app.deliveries.refusal(self.id)
        if error is None:
            return None
        try:
            record = self.app.backend.get([self.id])[0]
        except BackendUnavailable:
            record = None
        if record is not None and record.state in states.READY_STATES:
            self._ready = record
            if record.state != states.FAILED or record.error is None or \
                    not record.error.type.endswith(".BrokerUnavailable"):
                return None  # sent again under the same id and finished
        return BrokerUnavailable(f"task {self.id} not delivered to the broker: {error}")

    def _exception(self, record: TaskRecord) -> BaseException:
        if record.state == states.REVOKED:
            reason = record.error.message if record.error else "revoked"
            return Revoked(f"task {self.id} {reason}")
        if record.error is None:
            return rebuild_exception("builtins.Exception", "task failed", None, None)
        err = record.error
        return rebuild_exception(err.type, err.message, err.args, err.traceback)

    def revoke(self, terminate: bool = False) -> None:
        """Make sure the task never starts; it ends ``revoked`` unless it already started.

        With ``terminate=True`` a running task is stopped too: its state is ``revoked``
        at once and stays so (whatever the attempt does next is refused, it is never
        retried, ``get()`` raises ``Revoked``), and its worker stops it within a
        second: a process-pool child is killed and replaced, a coroutine is cancelled,
        a thread-pool task is told (``self.is_revoked()``; ``update_state`` and
        ``progress`` raise ``Revoked``) since threads cannot be stopped from outside.
        """
        now = time.time()
        self.app.backend.revoke([self.id], now)
        if terminate:
            self.app.backend.record([StateChange(self.id, states.REVOKED, now, error=ErrorInfo(
                "yadtq.exceptions.Revoked", "terminated", ["terminated"]))])

    def forget(self) -> None:
        """Delete the stored state and result."""
        self._ready = None
        self.app.readahead.forget(self.id)
        self.app.backend.forget([self.id])
