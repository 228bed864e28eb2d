"""The process pool: tasks run in child processes (``child.py``), so a task past its
``time_limit`` can be killed, and one that crashes its process costs only a child.

It shares the :class:`pools.Pool` interface with the thread pool; ``worker/main.py``
picks one by ``--pool``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..envelope import encode
from ..exceptions import Revoked, TimeLimitExceeded, WorkerLostError
from .child import child_main, death, outcome_from
from .childlog import LogRelay
from .executor import Outcome, error_info, report_lost_attempt, revoked_outcome, worker_lost
from .pools import Job, Pool, Sink, Spawn, plain_spawn
from .recycle import Recycling

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)


@dataclass
class _Child:
    process: Any
    conn: Connection
    job: Optional[Job] = None
    deadline: Optional[float] = None
    #: Its job was revoked with ``terminate=True``: kill it (``deadline`` is then now).
    revoked: bool = False
    #: Tasks it finished (for ``--max-tasks-per-child``).
    tasks: int = 0


class ProcessPool(Pool):
    """Tasks run in child processes; a child past its task's ``time_limit`` is killed
    and replaced, and the task fails with ``TimeLimitExceeded``.

    With ``app_path`` children import the app themselves (forkserver); without it
    they inherit it by fork.
    """

    kind = "processes"

    def __init__(self, app: YADTQ, size: int, worker: str, sink: Sink,
                 app_path: Optional[str] = None, spawn: Spawn = plain_spawn) -> None:
        super().__init__(app, size, worker, sink, spawn)
        self.app_path = app_path
        method = "forkserver" if app_path else "fork"
        self._ctx = multiprocessing.get_context(method)
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._collector: Optional[threading.Thread] = None
        #: When to replace a child between tasks (``--max-tasks-per-child`` and
        #: ``--max-memory-per-child``); set by the worker before :meth:`start`.
        self.recycling = Recycling()
        self._logs: Optional[LogRelay] = None

    def _spawn(self) -> _Child:
        parent, child = self._ctx.Pipe()
        logs = self._logs
        log_pipe = logs.pipe() if logs else None
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=child_main,
            args=(child, None if self.app_path else self.app, self.app_path, self.worker,
                  log_pipe, logs.level if logs else logging.WARNING),
            daemon=True,
        )
        process.start()
        child.close()
        if log_pipe is not None:
            log_pipe.close()
        return _Child(process, parent)

    def start(self) -> None:
        self._logs = LogRelay(self._ctx)
        self.spawn("pool-logs", self._logs.run)
        self._children = [self._spawn() for _ in range(self.size)]
        self._collector = self.spawn("pool", self._collect)
        _started.add(self)

    def resize(self, size: int) -> int:
        size = super().resize(size)
        with self._lock:
            idle = [c for c in self._children if c.job is None]
            surplus = idle[:max(0, len(self._children) - size)]
            for child in surplus:
                self._children.remove(child)
            missing = max(0, size - len(self._children))
        for child in surplus:
            child.conn.close()
            child.process.terminate()
        spawned = [self._spawn() for _ in range(missing)]
        with self._lock:
            self._children.extend(spawned)
        return size

    def _time_limit(self, job: Job) -> Optional[float]:
        limit = job.envelope.options.get("time_limit")
        task = self.app.tasks.get(job.envelope.task)
        if limit is None and task is not None:
            limit = task.options.time_limit
        return float(limit) if limit else None

    def submit(self, job: Job) -> None:
        """Hand ``job`` to an idle child; a child found dead is replaced first.

        Never raises: a job no child can take ends with a retryable outcome.
        """
        self._begin(job)
        if not self._may_start(job):
            return
        try:
            limit = self._time_limit(job)
            body = encode(job.envelope)
        except Exception as exc:  # an option or argument no child could take: fail the job
            now = time.time()
            self._finish(job, Outcome(job.envelope.id, states.FAILED, now, now,
                                      error=error_info(exc, with_traceback=False)))
            return
        for _attempt in range(2):
            with self._lock:
                child = next(c for c in self._children if c.job is None)
                child.job = job
                child.deadline = time.monotonic() + limit if limit else None
            try:
                child.conn.send_bytes(body)
            except (OSError, ValueError) as exc:  # the idle child is gone: replace it, try again
                with self._lock:
                    child.job, child.deadline = None, None
                logger.warning("pool child %s is gone (%s); replacing it", child.process.pid, exc)
                try:
                    self._renew(child)
                except Exception:
                    logger.exception("cannot start a pool child")
                    break
                continue
            logger.debug("task %s[%s] started in pool child %s", job.envelope.task, job.envelope.id,
                         child.process.pid, extra={"task_id": job.envelope.id,
                                                   "task": job.envelope.task})
            return
        self._finish(job, worker_lost(self.app, job.envelope, "no pool child could take the task",
                                      job.submitted))

    def terminate(self, task_id: str) -> None:
        """Kill the child running ``task_id`` and start another; the task ends ``revoked``."""
        with self._lock:
            for child in self._children:
                if child.job is not None and child.job.envelope.id == task_id:
                    child.revoked, child.deadline = True, 0.0  # the collector kills it now
                    return

    def _collect(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                conns = {c.conn: c for c in self._children if c.job is not None}
            if not conns:
                self._stopping.wait(0.01)
                continue
            ready = wait(list(conns), timeout=0.05)
            for conn in ready:
                child = conns[conn]  # type: ignore[index]
                try:
                    outcome = outcome_from(conn.recv_bytes())  # type: ignore[union-attr]
                except (EOFError, OSError):
                    self._replace(child, died=True)
                    continue
                except Exception:  # an unreadable answer: the child is not to be trusted
                    logger.exception("bad answer from pool child %s; replacing it", child.process.pid)
                    self._replace(child, died=True)
                    continue
                self._release(child, outcome)
            now = time.monotonic()
            for child in list(conns.values()):
                if child.deadline is not None and child.job is not None and now > child.deadline:
                    self._replace(child, died=False)

    def _release(self, child: _Child, outcome: Outcome) -> None:
        with self._lock:
            job = child.job
            child.tasks += 1
        # Replaced before its slot is free again, so no task is ever handed to it meanwhile.
        reason = self.recycling.reason(child.process.pid, child.tasks) if self.recycling.active else None
        if reason is not None:  # still holding its job: no submit picks it while it is replaced
            logger.info("replacing pool child %s: %s", child.process.pid, reason)
            self._renew(child)
        else:
            with self._lock:
                child.job, child.deadline = None, None
        if job is not None:
            self._finish(job, outcome)

    def _replace(self, child: _Child, died: bool) -> None:
        """End a child that died under its job, or overran its time limit, and start another.

        A death (a signal, the OOM killer) is no fault of the task: the attempt is
        retried. A time limit fails the task with ``TimeLimitExceeded``.
        """
        with self._lock:  # its job stays set until it is replaced: no submit picks it meanwhile
            job, child.deadline = child.job, None
            revoked, child.revoked = child.revoked, False
        if died:
            child.process.join(1)  # it is exiting: let it, so its exit status tells why
        elif revoked and job is not None:
            logger.info("task %s[%s] revoked: killing pool child %s", job.envelope.task,
                        job.envelope.id, child.process.pid)
        elif job is not None:
            logger.error("task %s[%s] exceeded its time limit of %s s; killing pool child %s",
                         job.envelope.task, job.envelope.id, self._time_limit(job), child.process.pid)
        with contextlib.suppress(OSError):
            child.process.kill()
        child.process.join(5)
        try:
            self._renew(child)
        except Exception:
            logger.exception("cannot start a pool child")
            with self._lock:  # the dead child is idle again: the next submit replaces it
                child.job = None
        if job is not None:
            # Only now is its slot free: a task submitted meanwhile would have found the
            # dead child idle and raced this replacement for its place.
            exc: BaseException
            if revoked and not died:
                exc = Revoked(f"task {job.envelope.id} terminated")
                outcome = revoked_outcome(job.envelope, job.submitted)
            elif died:
                reason = death(child.process)
                logger.error("task %s[%s]: %s; it will be retried", job.envelope.task,
                             job.envelope.id, reason)
                exc = WorkerLostError(reason)
                outcome = worker_lost(self.app, job.envelope, reason, job.submitted)
            else:
                exc = TimeLimitExceeded(f"task {job.envelope.task}[{job.envelope.id}] exceeded its "
                                        f"time limit of {self._time_limit(job)} s")
                outcome = Outcome(job.envelope.id, states.FAILED, job.submitted, time.time(),
                                  error=error_info(exc, with_traceback=False))
            report_lost_attempt(self.app, job.envelope, outcome, exc)  # the child cannot
            self._finish(job, outcome)

    def _renew(self, child: _Child) -> None:
        """Put a fresh child in ``child``'s place (unless the pool is stopping)."""
        with contextlib.suppress(OSError):
            child.process.kill()
        child.process.join(1)
        child.conn.close()
        with self._lock:
            if self._stopping.is_set() or child not in self._children:  # stopping, or resized away
                return
            self._children[self._children.index(child)] = self._spawn()

    def stop(self) -> None:
        _started.discard(self)
        self._stopping.set()
        if self._collector is not None:
            self._collector.join(2)
        with self._lock:
            children = list(self._children)
        for child in children:
            if child.job is not None:  # abandoned: it will be delivered again
                with contextlib.suppress(OSError):
                    child.process.kill()
            else:  # an empty message: exit (EOF alone may not come: forked siblings share pipes)
                with contextlib.suppress(OSError, ValueError):
                    child.conn.send_bytes(b"")
            child.conn.close()
        deadline = time.monotonic() + 5
        for child in children:
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.kill()
        if self._logs is not None:  # after the children: what they logged last is relayed
            self._logs.stop()


#: Process pools not yet stopped. Children ignore SIGTERM, so multiprocessing's own exit
#: handler (terminate, then join) would wait on them forever: stop them first.
_started: weakref.WeakSet[ProcessPool] = weakref.WeakSet()


@atexit.register
def _stop_pools_at_exit() -> None:
    for pool in list(_started):
        pool.stop()
