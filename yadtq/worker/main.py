"""Worker: wiring of consumer, pool, recorder, heartbeat and scheduler; signals; graceful stop."""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Optional

from .. import signals
from ..exceptions import BackendUnavailable, BrokerUnavailable, ConfigurationError, YADTQError
from ..settings import redact_url
from ..transports.base import WORKER_RUNNING, WORKER_STOPPED, Consumer, WorkerInfo
from ..transports.wakeups import WAKE_CONTROL, WakeupWatch, wakeup_source
from . import slots
from .aio import AsyncioPool
from .attempts import Identity, WorkerStats
from .consumer import TaskConsumer
from .control import ControlListener
from .executor import Outcome
from .heartbeat import Heartbeat, default_worker_name
from .links import Link
from .memory import TrimWhenQuiet, malloc_trim
from .pools import Job, Pool, Sink, Spawn, ThreadPool
from .recycle import Recycling
from .scheduler import Scheduler
from .supervise import Supervisor
from .terminate import Terminator
from .ticker import Ticker

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

POOL_KINDS = ("threads", "processes", "asyncio")
#: Default ``-c`` of an asyncio pool: coroutines are cheap.
ASYNCIO_CONCURRENCY = 100


def _default_concurrency(pool: str) -> int:
    if pool == "asyncio":
        return ASYNCIO_CONCURRENCY
    return 8 if pool == "threads" else (os.cpu_count() or 2)


def _make_pool(kind: str, app: YADTQ, size: int, worker: str, sink: Sink,
               app_path: Optional[str], spawn: Spawn, recycling: Recycling) -> Pool:
    if kind == "asyncio":
        return AsyncioPool(app, size, worker, sink, spawn)
    if kind == "threads":
        return ThreadPool(app, size, worker, sink, spawn)
    if kind == "processes":
        # Imported here: multiprocessing's modules are 0.6 MB of every worker's memory.
        from .process_pool import ProcessPool

        pool = ProcessPool(app, size, worker, sink, app_path, spawn)
        pool.recycling = recycling
        return pool
    raise ConfigurationError(f"unknown pool {kind!r} (use threads, processes or asyncio)")


#: Seconds the worker waits at start for the backend to take its first heartbeat.
START_TIMEOUT = 15.0
#: Least seconds outcomes wait for the recorder before the worker reports itself unhealthy.
RECORDER_STUCK_MIN = 5.0


class Worker:
    """Consumes tasks from queues and runs them.

    Args:
        app: the app whose tasks this worker runs.
        name: worker id (default ``hostname.pid``).
        concurrency: tasks run at once (default 8 threads, one process per core, or
            100 coroutines).
        pool: ``threads``, ``processes`` (needed for ``time_limit`` on sync tasks) or
            ``asyncio`` (``async def`` tasks as coroutines of one loop, sync ones in threads).
        queues: queue names (default: the app's default queue).
        app_path: import path of the app, so process-pool children can import it.
        max_tasks_per_child: replace a process-pool child after this many tasks.
        max_memory_per_child: replace a process-pool child, between tasks, once its
            resident memory exceeds this many megabytes.
    """

    def __init__(self, app: YADTQ, *, name: Optional[str] = None,
                 concurrency: Optional[int] = None, pool: str = "threads",
                 queues: Optional[Sequence[str]] = None, app_path: Optional[str] = None,
                 max_tasks_per_child: Optional[int] = None,
                 max_memory_per_child: Optional[float] = None) -> None:
        if pool not in POOL_KINDS:
            raise ConfigurationError(f"unknown pool {pool!r} (use threads, processes or asyncio)")
        if concurrency is not None and concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        self.recycling = Recycling(max_tasks_per_child, max_memory_per_child)
        if self.recycling.active and pool != "processes":
            raise ConfigurationError("--max-tasks-per-child and --max-memory-per-child need "
                                     "--pool processes")
        self.app = app
        self.name = name or default_worker_name()
        self.identity = Identity(self.name, f"{self.name}#{uuid.uuid4().hex[:12]}")
        self.pool_kind = pool
        self.concurrency = concurrency or _default_concurrency(pool)
        self.queues = list(queues or [app.settings.default_queue])
        self.app_path = app_path
        self.stats = WorkerStats()
        self.started = 0.0
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._signals = 0
        #: Outcomes for the recorder; ``None`` wakes it to look at its stop event.
        self._outcomes: queue.SimpleQueue[Optional[tuple[Job, Outcome]]] = queue.SimpleQueue()
        self._pending = 0
        #: When the recorder last stored a batch, or outcomes started waiting for it.
        self._recorded = time.monotonic()
        self._pending_cond = threading.Condition()
        self._pool: Optional[Pool] = None
        self._consumer: Optional[Consumer] = None
        self._tasks: Optional[TaskConsumer] = None
        self._state = WORKER_RUNNING
        self._exit_code = 0
        self._supervisor = Supervisor(3 * app.settings.heartbeat_interval, on_fatal=self._fatal)
        self._links: list[Link] = []
        #: Outcomes waiting this long for the recorder make the worker unhealthy (a backend
        #: call that never returns fails nothing, so only its lack of progress shows it).
        self._stuck_after = max(10 * app.settings.heartbeat_interval, RECORDER_STUCK_MIN)

    # ------------------------------------------------------------------ public control
    def run(self) -> int:
        """Serve until stopped (SIGTERM/SIGINT in the main thread); returns the exit code:
        0 after a graceful stop, 1 after a worker thread crashed in a way that may have lost
        the outcomes it held (their deliveries are delivered again).

        Raises:
            BackendUnavailable: the backend cannot be reached at start.
        """
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._serve()
        finally:
            self._stopped.set()
        return self._exit_code

    def start(self) -> Worker:
        """Serve in a background thread (for tests and embedding); returns self."""
        self._thread = threading.Thread(target=self._serve_in_thread, name=f"yadtq-worker-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Ask the worker to stop gracefully and wait for it (up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def is_stopping(self) -> bool:
        return self._stop.is_set()

    def _serve_in_thread(self) -> None:
        try:
            self._serve()
        except Exception:
            logger.exception("worker %s crashed", self.name)
        finally:
            self._stopped.set()

    def _fatal(self, reason: str) -> None:
        """A supervised thread crashed where a restart alone is unsafe: stop, exit non-zero."""
        if self._exit_code == 0:
            logger.critical("worker %s stopping with exit status 1 (%s): what it has not stored "
                            "will be delivered again", self.name, reason)
        self._exit_code = 1
        self._stop.set()

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self._signals += 1
        if self._signals > 1:
            logger.warning("second signal: exiting at once")
            os._exit(1)
        logger.info("%s received: finishing in-flight tasks (signal again to exit at once)",
                    signal.Signals(signum).name)
        self._stop.set()

    # ------------------------------------------------------------------ lifecycle
    def report(self) -> WorkerInfo:
        """This worker's heartbeat contents."""
        stats = self.stats
        interval = self.app.settings.heartbeat_interval
        problems = self.problems()
        extra: dict[str, object] = {"retried": stats.retried, "registered": sorted(self.app.tasks)}
        if problems:
            extra["problems"] = problems
        return WorkerInfo(
            worker=self.name, instance=self.identity.instance, hostname=socket.gethostname(),
            pid=os.getpid(), queues=tuple(self.queues), concurrency=self.concurrency,
            pool=self.pool_kind, started=self.started, last_heartbeat=time.time(),
            tasks_done=stats.done, tasks_failed=stats.failed,
            active=len(self._pool.active()) if self._pool else 0, state=self._state,
            healthy=not problems and (self._state == WORKER_STOPPED
                                      or time.monotonic() - stats.last_turn <= 2 * interval),
            extra=extra,
        )

    def _resized(self, size: int) -> None:
        self.concurrency = size  # reported with the next heartbeat

    def problems(self) -> list[str]:
        """Why this worker is unhealthy now (empty when it is not): recent crashes and
        errors of its threads, and lost connections."""
        problems = self._supervisor.problems()
        problems.extend(f"{link.name} connection lost" for link in self._links if not link.up)
        waited = time.monotonic() - self._recorded
        if self._pending > 0 and waited > self._stuck_after:
            problems.append(f"recorder: {self._pending} outcomes waiting to be stored for {waited:.0f} s")
        return problems

    def _sink(self, job: Job, outcome: Outcome) -> None:
        with self._pending_cond:
            if self._pending <= 0:
                self._recorded = time.monotonic()
            self._pending += 1
        self._outcomes.put((job, outcome))

    def _stored(self, count: int) -> None:
        with self._pending_cond:
            self._pending -= count
            self._recorded = time.monotonic()
            self._pending_cond.notify_all()

    def _drain(self, timeout: float) -> None:
        """Finish and store in-flight tasks within ``timeout`` (consumer about to lose them)."""
        deadline = time.monotonic() + timeout
        if self._pool is not None:
            self._pool.join(timeout)
        self._wait_stored(max(0.0, deadline - time.monotonic()))

    def _wait_stored(self, timeout: float) -> None:
        """Wait up to ``timeout`` until every outcome handed to the recorder is stored."""
        with self._pending_cond:
            self._pending_cond.wait_for(lambda: self._pending <= 0, timeout)

    def _revocation_drain(self, timeout: float) -> None:
        """The consumer is about to lose partitions: finish and store their tasks within
        ``timeout`` (``TaskConsumer.drain``: only theirs; their parked deliveries at once)."""
        tasks = self._tasks
        if tasks is not None:
            tasks.drain(timeout)
        else:
            self._drain(timeout)

    def _connect(self, link: Link) -> Consumer:
        """The broker consumer, retrying until the broker answers or the worker stops."""
        delay = 0.5
        while True:
            try:
                consumer = self.app.broker.consumer(self.queues, on_drain=self._revocation_drain,
                                                     worker=self.name)
            except BrokerUnavailable as exc:
                link.failed(exc)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 10.0)
            else:
                link.ok()
                return consumer

    def _register(self) -> None:
        """The first heartbeat, bounded by ``START_TIMEOUT``: a backend that refuses or does
        not answer fails the start with one clear error instead of a hang."""
        done = threading.Event()
        failure: list[BaseException] = []

        def first_beat() -> None:
            try:
                self.app.backend.heartbeat(self.report())
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        url = redact_url(self.app.settings.backend_url)
        threading.Thread(target=first_beat, name="yadtq-register", daemon=True).start()
        if not done.wait(START_TIMEOUT):
            raise BackendUnavailable(f"worker {self.name} cannot start: the backend {url} did not "
                                     f"answer within {START_TIMEOUT:.0f} s")
        if failure:
            if isinstance(failure[0], YADTQError):
                raise BackendUnavailable(f"worker {self.name} cannot start: backend {url}: "
                                         f"{failure[0]}") from None
            raise failure[0]

    def _watch_wakeups(self, scheduler: Scheduler, control: ControlListener) -> Optional[WakeupWatch]:
        """Have the backend wake the scheduler and the control listener (where it can):
        an idle worker then waits instead of asking every second."""
        source = wakeup_source(self.app.backend)
        if source is None:
            return None

        def wake(kind: str) -> None:
            (control.wake if kind == WAKE_CONTROL else scheduler.wake)()

        try:
            watch = source.watch_wakeups(self.name, wake)
        except YADTQError as exc:
            logger.warning("worker %s: no wake-ups from the backend (%s); looking at the schedule "
                           "and control channel every second", self.name, exc)
            return None
        scheduler.pushed = control.pushed = lambda: watch.live
        return watch

    def _serve(self) -> None:
        settings = self.app.settings
        supervisor = self._supervisor
        self.started = time.time()
        if self.pool_kind != "processes":
            limited = sorted(n for n, t in self.app.tasks.items()
                             if t.options.time_limit and not t.is_async)
            if limited:
                logger.warning("time_limit is enforced on sync tasks only with --pool processes "
                               "(tasks: %s)", ", ".join(limited))
        pool = self._pool = _make_pool(self.pool_kind, self.app, self.concurrency, self.name,
                                       self._sink, self.app_path, supervisor.spawn, self.recycling)
        pool.start()  # before any other thread, so forked children inherit none
        broker_link = Link("broker", redact_url(settings.broker_url))
        backend_link = Link("backend", redact_url(settings.backend_url))
        self._links = [broker_link, backend_link]
        heartbeat = Heartbeat(self.app, self.report, backend_link)
        try:
            self._register()
        except BaseException:
            pool.stop()
            supervisor.close()
            raise
        backend_link.ok()
        consumer = self._consumer = self._connect(broker_link)
        scheduler = Scheduler(self.app, backend_link, ticker=Ticker(self.app))
        tasks = TaskConsumer(self.app, consumer, pool, self.identity, self.stats, self._outcomes,
                             self._stop, on_stored=self._stored, backend_link=backend_link,
                             on_scheduled=scheduler.wake)
        if slots.has_limits(self.app):  # slots of dead holders are freed and handed on
            heartbeat.after_beat.append(lambda: slots.sweep_and_wake(self.app, scheduler.wake))
        heartbeat.after_beat.append(TrimWhenQuiet(self.stats.finished, lambda: len(pool.active()),
                                                  malloc_trim()))
        self._tasks = tasks
        recorder_stop = threading.Event()
        # A crash may lose the batch of outcomes the recorder held: restart it (what is in
        # flight still gets stored) and stop the worker, so those deliveries come back.
        recorder = supervisor.spawn("recorder", lambda: tasks.record_forever(recorder_stop),
                                    fatal=True)
        beats = supervisor.spawn("heartbeat", heartbeat._run)
        schedules = supervisor.spawn("scheduler", scheduler._run)
        terminator = Terminator(self.app, pool)
        terminations = supervisor.spawn("terminator", terminator.run)
        control = ControlListener(self.app, self.name, pool, shutdown=self._stop.set,
                                  resized=self._resized)
        controls = supervisor.spawn("control", control.run)
        wakeups = self._watch_wakeups(scheduler, control)
        logger.info("worker %s joined: queues %s, %s pool x%d", self.name, ",".join(self.queues),
                    self.pool_kind, self.concurrency)
        signals.worker_ready.send(worker=self)
        backoff = 0.1
        try:
            while not self._stop.is_set():
                try:
                    tasks.turn()
                    broker_link.ok()
                    backoff = 0.1
                except BrokerUnavailable as exc:
                    broker_link.failed(exc)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                except YADTQError as exc:
                    supervisor.fault("consume loop", exc)
                    logger.warning("consume loop: %s; retrying in %.1f s", exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                except Exception as exc:
                    supervisor.fault("consume loop", exc)
                    logger.exception("consume loop failed; continuing")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            logger.info("worker %s stopping: waiting up to %.0f s for %d in-flight tasks",
                        self.name, settings.shutdown_timeout, len(pool.active()))
            tasks.details.wake()  # no attempt starts any more: save the last calls now
            scheduler.stop()
            control.stop()
            controls.join(5)
            schedules.join(5)
            if wakeups is not None:
                wakeups.close()
            if not pool.join(settings.shutdown_timeout):
                logger.warning("%d tasks still running at shutdown; they will be redelivered",
                               len(pool.active()))
            terminator.stop()
            terminations.join(5)
            self._wait_stored(5.0)  # the pool was waited for above: what it abandoned stays
            recorder_stop.set()
            self._outcomes.put(None)
            recorder.join(10)
            supervisor.close()
            try:
                consumer.close()
            except YADTQError as exc:
                logger.warning("closing the consumer: %s", exc)
            self._state = WORKER_STOPPED
            heartbeat.stop()
            beats.join(5)
            try:
                heartbeat.beat()
            except YADTQError as exc:
                logger.warning("final heartbeat: %s", exc)
            pool.stop()
            self.app.flush(10)
            logger.info("worker %s left (%d done, %d failed)", self.name, self.stats.done,
                        self.stats.failed)
            signals.worker_shutdown.send(worker=self)
