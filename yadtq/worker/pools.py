"""Thread and process pools behind one small interface.

A pool runs :func:`executor.execute` for each submitted :class:`Job` and hands
``(job, outcome)`` to a sink. The worker submits only when :meth:`Pool.free_slots`
says a slot is free. A slot is a thread or child to run on, or, in a thread pool
of sync tasks, a place among the ``ahead`` claimed jobs that wait for the next
free thread (claim ahead: the worker claims the next batch while this one runs,
so its threads never idle waiting for a claim; the gate asked before each job
starts checks those that waited). While its tasks are short, a thread pool claims
deeper ahead (``DEEP_AHEAD``): a batch's claim and store round trips cost the worker
about as much for one job as for thirty, and a few milliseconds of claimed work is
not long to wait behind.
``submit`` never raises: a job that cannot start ends with a retryable outcome, so
every claimed job reaches the sink.

A pool's threads are started through ``spawn`` (the worker passes its
supervisor's, see ``supervise.py``), so none of them dies silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from .. import states
from ..envelope import Envelope
from ..running import revocations
from ..transports.base import Delivery
from .executor import Outcome, error_info, execute
from .loop import LoopThread, cancel_coroutine, run_attempt

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: A thread pool of sync tasks claims ``size`` jobs ahead, or ``DEEP_AHEAD`` times that
#: while its tasks run under ``SHORT_TASK`` seconds on average: a batch's claim and
#: store round trips cost the worker about 170 us however many jobs it holds, which
#: for no-op tasks is most of their cost (2 Kafka + Redis workers ``-c 8``, 6,000 no-ops
#: end to end, 5 rounds: 75-78 us of worker CPU per task at ``size`` ahead, 52-57 at
#: three times it; docs/performance-history.md). Jobs waiting behind that deeper queue are at
#: most ``DEEP_AHEAD * SHORT_TASK`` seconds of work per thread, under the
#: ``RECLAIM_BEFORE_START_AFTER`` after which a waiting job is claimed again anyway.
DEEP_AHEAD = 3
SHORT_TASK = 0.005
#: Weight of the newest run time in a thread pool's running mean of its tasks' run times.
RUN_TIME_WEIGHT = 0.05


@dataclass
class Job:
    """A claimed delivery on its way through a pool."""

    envelope: Envelope
    delivery: Delivery
    #: More deliveries of the same task that arrived while it ran; done with it.
    duplicates: list[Delivery] = field(default_factory=list)
    submitted: float = field(default_factory=time.time)
    #: ``time.monotonic()`` when its claim's grant was read.
    claimed: float = field(default_factory=time.monotonic)
    #: ``time.monotonic()`` when that claim was asked for: the grant came no earlier. A
    #: process frozen while the request was out reads the grant late; the claim's age
    #: counts from here, so the freeze counts against it (``TaskConsumer.may_start``).
    asked: float = field(default_factory=time.monotonic)


Sink = Callable[[Job, Outcome], None]
#: Asked right before a job starts: whether it may (see :attr:`Pool.gate`).
Gate = Callable[[Job], bool]
#: Starts a named pool thread running a loop: ``spawn(name, target) -> Thread``.
Spawn = Callable[[str, Callable[[], None]], threading.Thread]


def plain_spawn(name: str, target: Callable[[], None]) -> threading.Thread:
    """A bare daemon thread (when no supervisor is given)."""
    thread = threading.Thread(target=target, name=f"yadtq-{name}", daemon=True)
    thread.start()
    return thread


class Pool(ABC):
    """Runs jobs concurrently, at most ``size`` at a time."""

    kind = ""

    def __init__(self, app: YADTQ, size: int, worker: str, sink: Sink,
                 spawn: Spawn = plain_spawn) -> None:
        self.app = app
        self.size = size
        self.worker = worker
        self.sink = sink
        self.spawn = spawn
        self._cond = threading.Condition()
        #: Jobs submitted and not finished: running, or claimed and waiting for a thread.
        self._active: dict[str, Job] = {}
        #: How many claimed jobs may wait for a free thread beyond ``size`` (claim ahead).
        self.ahead = 0
        #: Asked right before each job starts; a refused job never runs nor reaches the
        #: sink (the gate took it back: e.g. its claim may have lapsed meanwhile).
        self.gate: Optional[Gate] = None

    def free_slots(self) -> int:
        """How many more jobs may be submitted now (running ones plus ``ahead`` waiting).

        While claimed jobs still wait for a thread, none until half of ``ahead`` is free:
        the threads have work meanwhile, and the next claim takes a batch, not one job
        per backend round trip (a job claimed sooner would only wait longer)."""
        with self._cond:
            return self._room()

    def _room(self) -> int:
        room = self.size + self.ahead - len(self._active)
        if len(self._active) > self.size and room < (self.ahead + 1) // 2:
            return 0
        return room

    def wait_for_slot(self, timeout: float) -> bool:
        """Block until a slot is free or ``timeout`` passes; whether one is free."""
        with self._cond:
            return self._cond.wait_for(lambda: self._room() > 0, timeout)

    def active(self) -> list[Job]:
        with self._cond:
            return list(self._active.values())

    def join(self, timeout: float) -> bool:
        """Wait until no job runs; whether that happened within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._active, timeout)

    def wait_running(self, timeout: float, stop: threading.Event) -> bool:
        """Block while no job runs (up to ``timeout``, or ``stop`` and wake_waiters); whether one runs."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._active) or stop.is_set(), timeout)

    def wake_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _begin(self, job: Job) -> None:
        with self._cond:
            self._active[job.envelope.id] = job
            if len(self._active) == 1:  # the pool was idle: wake the terminator
                self._cond.notify_all()

    def _may_start(self, job: Job) -> bool:
        """Ask the gate; a refused job leaves the pool without an outcome."""
        if self.gate is None or self.gate(job):
            return True
        self._leave(job)
        return False

    def _leave(self, job: Job) -> None:
        """Take ``job`` out of the active ones. Waiters are woken only when one of them can
        go on: a slot is free (an empty pool has free slots too). While claimed jobs wait
        for a thread, most ends free none (``_room``), and waking the consumer at each
        would cost a thread switch per task for nothing."""
        with self._cond:
            self._active.pop(job.envelope.id, None)
            if self._room() > 0:
                self._cond.notify_all()

    def terminate(self, task_id: str) -> None:
        """Stop a running task revoked with ``terminate=True``: a coroutine is cancelled;
        a thread is told (cooperative: ``is_revoked()``, ``Revoked`` from ``progress``)."""
        if not cancel_coroutine(task_id):
            revocations.add(task_id)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        try:
            self.sink(job, outcome)
        finally:
            revocations.discard(job.envelope.id)
            self._leave(job)

    def resize(self, size: int) -> int:
        """Run at most ``size`` jobs at once from now on (``yadtq control pool-grow/shrink``);
        jobs running beyond a smaller size finish first. Returns the new size."""
        with self._cond:
            self.size = max(1, size)
            self._cond.notify_all()
            return self.size

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def stop(self) -> None:
        """Stop accepting work and release threads or processes (running jobs are abandoned)."""


class ThreadPool(Pool):
    """Tasks run in threads of the worker process. ``time_limit`` is not enforced on
    sync tasks; ``async def`` tasks run on an event loop thread, within the same bound."""

    kind = "threads"

    def __init__(self, app: YADTQ, size: int, worker: str, sink: Sink,
                 spawn: Spawn = plain_spawn) -> None:
        super().__init__(app, size, worker, sink, spawn)
        self._jobs: queue.SimpleQueue[Optional[Job]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: Optional[LoopThread] = None
        #: ``async def`` tasks all run at once on the loop, not one per thread: claimed
        #: ahead, they would run beyond ``size``. So an app with any claims none ahead.
        self._claims_ahead = not any(task.is_async for task in app.tasks.values())
        #: Running mean of recent sync tasks' run times, in seconds (updated by the
        #: threads without a lock: a lost update only skips a sample). Starts as long:
        #: the pool claims deeper only once its tasks are seen to be short.
        self.mean_run_time = SHORT_TASK
        self.ahead = size if self._claims_ahead else 0

    def start(self) -> None:
        for n in range(self.size):
            self._threads.append(self.spawn(f"exec-{n}", self._run))

    def submit(self, job: Job) -> None:
        self._begin(job)
        task = self.app.tasks.get(job.envelope.task)
        if task is not None and task.is_async:
            if self._loop is None:  # only the consumer thread submits
                self._loop = LoopThread("yadtq-threads-loop")
                self._loop.start()
            self._loop.spawn(self._run_async(job))
        else:
            self._jobs.put(job)

    async def _run_async(self, job: Job) -> None:
        if self._may_start(job):
            self._finish(job, await run_attempt(self.app, job.envelope, self.worker))

    def resize(self, size: int) -> int:
        # Threads beyond a smaller size stay, idle: the size alone bounds what runs, so
        # no job waits ahead then (a waiting one would run on a spare thread).
        with self._cond:
            self.ahead = 0
        size = super().resize(size)
        for n in range(len(self._threads), size):
            thread = threading.Thread(target=self._run, name=f"yadtq-exec-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self._cond:
            self.ahead = self._ahead_for(self.mean_run_time)
            self._cond.notify_all()
        return size

    def _ahead_for(self, mean_run_time: float) -> int:
        """How many claimed jobs may wait for a thread: none with async tasks or spare
        threads (a waiting job would run on a spare one beyond the size), ``size`` while
        tasks are long, ``DEEP_AHEAD`` times it while they are short."""
        if not self._claims_ahead or len(self._threads) > self.size:
            return 0
        return self.size * (DEEP_AHEAD if mean_run_time < SHORT_TASK else 1)

    def _ran(self, seconds: float) -> None:
        """Note a sync task's run time; the claim-ahead depth follows the running mean."""
        mean = self.mean_run_time = self.mean_run_time + (seconds - self.mean_run_time) * RUN_TIME_WEIGHT
        if self.ahead and self.ahead != self._ahead_for(mean):
            with self._cond:
                if self.ahead:  # not zeroed by a resize meanwhile
                    self.ahead = self._ahead_for(mean)
                    self._cond.notify_all()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not self._may_start(job):
                continue
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("task %s[%s] started", job.envelope.task, job.envelope.id,
                             extra={"task_id": job.envelope.id, "task": job.envelope.task})
            began = time.monotonic()
            try:
                outcome = execute(self.app, job.envelope, self.worker)
            except BaseException as exc:  # a task that raises SystemExit must not kill the pool
                now = time.time()
                outcome = Outcome(job.envelope.id, states.FAILED, now, now, error=error_info(exc))
            self._ran(time.monotonic() - began)
            self._finish(job, outcome)

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        if self._loop is not None:
            self._loop.stop()
