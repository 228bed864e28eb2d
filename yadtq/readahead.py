"""Reading the results of many sent tasks in few backend round trips.

A client that sends many tasks and then waits for each result in turn would pay
one backend round trip per ``get()`` even when the tasks finished long ago. The
app remembers the results it handed out and not yet seen ready (bounded, weakly
referenced, oldest first); a ``get()`` reads its own task's record together with
those of up to ``READ_AHEAD - 1`` others in one call (``ResultBackend.get``), and
each other found ready keeps that record for its own next ``get()``, once, if
that comes within ``FRESH`` seconds (as a group's members are read together).
Nothing is cached beyond that: every later read asks the backend (a finished
task can be run again under its id, ``yadtq dlq requeue``).

A task not ready yet is waited for as before, by notification; after such a miss
the next few ``get()`` calls skip reading ahead (the client is ahead of the
workers: reading others' records would only cost it time).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, Optional

from . import states

if TYPE_CHECKING:
    from .result import AsyncResult
    from .transports.base import ResultBackend, TaskRecord

#: Seconds a record read ahead may be used by its result's ``get()``.
FRESH = 1.0
#: Records read in one round trip by a ``get()``.
READ_AHEAD = 32
#: Most ``get()`` calls that skip reading ahead after reads that found their own task not ready.
MAX_SKIP = 15
#: Results remembered per app (the oldest are forgotten first).
REMEMBERED = 10_000


class ReadAhead:
    """The results this process sent and has not seen ready, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, weakref.ReferenceType[AsyncResult[Any]]] = OrderedDict()
        #: Results handed out since the last ``read``/``forget``, taken in by ``_take_in``.
        self._incoming: deque[weakref.ReferenceType[AsyncResult[Any]]] = deque(maxlen=REMEMBERED)
        #: Reads to skip: after a read that found its own task not ready (the client is
        #: ahead of the workers) the next 1, 3, 7, ... 15 ``get()`` wait directly.
        self._cool = 0
        self._skip = 0

    def track(self, result: AsyncResult[Any]) -> None:
        """Remember a result just handed out for a sent task (no lock: a deque's append
        is atomic; :meth:`read` takes them in)."""
        self._incoming.append(weakref.ref(result))

    def track_many(self, results: list[AsyncResult[Any]]) -> None:
        """:meth:`track` for many results at once (a bulk send)."""
        self._incoming.extend([weakref.ref(result) for result in results])

    def tracked(self) -> list[str]:
        """The ids of the results tracked now, oldest first."""
        with self._lock:
            self._take_in()
            return list(self._pending)

    def _take_in(self) -> None:
        """Move the results tracked since the last call into ``_pending`` (under the lock)."""
        incoming, pending = self._incoming, self._pending
        while incoming:
            ref = incoming.popleft()
            result = ref()
            if result is not None:
                pending[result.id] = ref
        while len(pending) > REMEMBERED:
            pending.popitem(last=False)

    def read(self, backend: ResultBackend, result: AsyncResult[Any]) -> Optional[TaskRecord]:
        """``result``'s record if it is ready, read together with other tracked results'
        (which keep theirs when ready); ``None`` when it is not ready or not tracked."""
        prefetched, result._prefetched = result._prefetched, None
        if prefetched is not None and time.monotonic() - prefetched[1] <= FRESH:
            return prefetched[0]
        with self._lock:
            self._take_in()
            if result.id not in self._pending:
                return None
            if self._skip > 0:
                self._skip -= 1
                return None
            others: list[AsyncResult[Any]] = []
            seen: list[str] = []  # gone or already ready: dropped below
            for task_id, ref in self._pending.items():
                if len(others) >= READ_AHEAD - 1:
                    break
                other = ref()
                if other is None or other._ready is not None or other._prefetched is not None:
                    seen.append(task_id)
                elif other is not result:
                    others.append(other)
            for task_id in seen:
                del self._pending[task_id]
            if not others:  # nothing to read ahead: ``get`` waits for its own as before
                return None
        batch = [result, *others]
        records = backend.get([r.id for r in batch])
        read_at = time.monotonic()
        ready: list[str] = []
        own: Optional[TaskRecord] = None
        for each, record in zip(batch, records):
            if record is not None and record.state in states.READY_STATES:
                if each is result:
                    own = record
                else:
                    each._prefetched = (record, read_at)
                ready.append(each.id)
        with self._lock:
            for task_id in ready:
                self._pending.pop(task_id, None)
            if own is None:
                self._cool = self._skip = min(2 * self._cool + 1, MAX_SKIP)
            else:
                self._cool = 0
        return own

    def forget(self, task_id: str) -> None:
        """Stop tracking ``task_id`` (its result was read, or forgotten)."""
        with self._lock:
            self._take_in()
            self._pending.pop(task_id, None)
