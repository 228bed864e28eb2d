"""YADTQ: the application object — settings, task registry, sending tasks, reading results.

The class keeps the public methods; the work behind many of them lives beside it:
``config.py`` (configuring, task discovery), ``registry.py`` (task names),
``sending.py``, ``delivery.py`` (broker refusals), ``liveness.py`` (worker states)
and ``schedules.py`` (periodic tasks).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, TypeVar, Union, overload

from typing_extensions import ParamSpec

from . import liveness, registry, schedules, sending
from .canvas.builtins import register_builtins
from .canvas.group_result import GroupResult
from .canvas.send import apply as send_canvas
from .clock import BackendClock
from .collecting import collector_paused
from .config import DeferredSteps, check_transports_kept, configured, discover_tasks
from .decorators import BoundTaskDecorator as BoundTaskDecorator
from .decorators import TaskDecorator as TaskDecorator
from .delivery import DeliveryWatch, delivers_later, flush_at_exit, record_undelivered
from .exceptions import ConfigurationError
from .liveness import ALIVE as ALIVE
from .liveness import OFFLINE as OFFLINE
from .liveness import UNRESPONSIVE as UNRESPONSIVE
from .naming import default_task_name
from .periodic import CATCH_UP_ONCE, Schedule
from .readahead import ReadAhead
from .result import AsyncResult
from .settings import Settings, eager_in_memory, explicit_settings, load_settings
from .task import AsyncTask, Task, TaskOptions, build_options
from .transports.base import Broker, ResultBackend, WorkerInfo, create_backend, create_broker

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .canvas.signature import Canvas
    from .transports.base import WorkerFailure

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_AsyncResult = AsyncResult


class YADTQ:
    """A yadtq application: where tasks are registered and sent from.

    Args:
        name: the app's name (used in worker ids and logs).
        broker: broker URL (``kafka://``, ``sqlite:///``, ``memory://``); defaults to
            ``YADTQ_BROKER_URL``, then the embedded ``sqlite:///yadtq.db``.
        backend: backend URL (``redis://``, ``sqlite:///``, ``memory://``); defaults to
            ``YADTQ_BACKEND_URL``, then the embedded default.
        **settings: any field of :class:`yadtq.settings.Settings`, plus the shortcuts
            ``broker_ip``/``backend_ip``; each also reads from ``YADTQ_<NAME>``.
    """

    def __init__(self, name: Optional[str] = None, *, broker: Optional[str] = None,
                 backend: Optional[str] = None, **settings: Any) -> None:
        self.name = name or "yadtq"
        self.settings: Settings = eager_in_memory(load_settings(broker=broker, backend=backend, **settings))
        #: Settings given as arguments: configuration objects never override them.
        self._explicit = explicit_settings(broker, backend, settings)
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: short name ("add") -> full names, for the CLI and send_task.
        self._aliases: dict[str, set[str]] = {}
        #: Periodic schedules declared in code, by name: saved by every worker at start.
        self.periodic_schedules: dict[str, Schedule] = {}
        self._broker: Optional[Broker] = None
        self._backend: Optional[ResultBackend] = None
        self._lock = threading.Lock()
        #: Delivery reports of sent tasks, and the refusals they brought (``delivery.py``).
        self.deliveries = DeliveryWatch()
        #: Results handed out for sent tasks, read in batches by ``get()`` (``readahead.py``).
        self.readahead = ReadAhead()
        self._exit_flush = False
        self._clock: Optional[BackendClock] = None
        self._task_defaults = self._defaults_from_settings()
        #: Called as ``send_hook(task_id, queue, options)`` for each task sent; may add
        #: to its options and returns message headers to add (``contrib/otel.py``).
        self.send_hook: Optional[Callable[[str, str, dict[str, Any]], Mapping[str, bytes]]] = None
        #: Steps :meth:`finalize` runs once (deferred task discovery).
        self._deferred = DeferredSteps()
        register_builtins(self)

    def _defaults_from_settings(self) -> TaskOptions:
        return TaskOptions(
            name="", max_retries=self.settings.max_retries, retry_delay=self.settings.retry_delay,
            retry_backoff_max=self.settings.retry_backoff_max,
        )

    def config_from_object(self, obj: Any, namespace: Optional[str] = None) -> None:
        """Read settings from a module, an import path (``"pkg.settings"``,
        ``"pkg.mod:attr"``) or any object (a class, an instance, a dict).

        Lower-case names are settings (modules, classes and functions among them are
        skipped). With ``namespace="YADTQ"`` the names ``YADTQ_<SETTING>`` are read
        instead, as in Django: ``config_from_object("django.conf:settings",
        namespace="YADTQ")`` takes ``YADTQ_BROKER_URL`` as ``broker_url``. They override
        the environment, never the arguments given to ``YADTQ(...)``. Call it before the
        app sends anything; task defaults (``max_retries``...) apply to tasks registered
        after it.

        Raises:
            ConfigurationError: an unknown setting, a bad value, or an import failing.
        """
        updated, names = configured(self.settings, obj, namespace, self._explicit)
        with self._lock:
            check_transports_kept(self.settings, updated, self._broker is not None, self._backend is not None)
            self.settings = updated
            self._task_defaults = self._defaults_from_settings()
        logger.debug("app %s configured from %r: %s", self.name, obj, ", ".join(names))

    def autodiscover_tasks(self, packages: Optional[Union[Sequence[str], Callable[[], Sequence[str]]]] = None,
                           related_name: str = "tasks") -> None:
        """Import the ``tasks`` module of each package, so their tasks register.

        With ``packages`` (names, or a function giving them) each package's ``tasks``
        module and those of its sub-packages are imported (``yadtq worker -A package``
        does this for its package). Without, each of Django's installed apps'
        ``tasks`` module is imported, once Django's app registry is ready: at once if
        it is, else when a ``yadtq`` command (the worker) loads the app, which then
        sets Django up (``yadtq.contrib.django``; docs/django.md).

        Raises:
            ConfigurationError: a ``tasks`` module fails to import; no packages given
                and Django is not installed.
        """
        discover_tasks(self, packages, related_name)

    def on_finalize(self, step: Callable[[], None]) -> None:
        """Run ``step`` when the app is finalized (:meth:`finalize`), or now if it was."""
        self._deferred.add(step)

    def finalize(self) -> None:
        """Run the set-up steps deferred until the app is put to work: the task
        discovery that waits for Django's app registry, for one. ``yadtq`` commands
        (the worker and its process-pool children among them) call it after loading
        the app; calling it again does nothing.

        Raises:
            ConfigurationError: a deferred step failed.
        """
        self._deferred.run()

    def __repr__(self) -> str:
        return f"<YADTQ {self.name} broker={self.settings.broker_url} backend={self.settings.backend_url}>"

    # ------------------------------------------------------------------ transports
    @property
    def broker(self) -> Broker:
        """The broker, connected on first use."""
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    broker = create_broker(self.settings.broker_url, self.settings)
                    broker.on_delivery_error = functools.partial(record_undelivered, self)
                    self.deliveries.watch(broker)
                    if delivers_later(broker) and not self._exit_flush:
                        self._exit_flush = True
                        flush_at_exit(self)  # a script exiting right after .delay() loses nothing
                    self._broker = broker
        return self._broker

    @property
    def backend(self) -> ResultBackend:
        """The result backend, connected on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    backend = create_backend(self.settings.backend_url, self.settings)
                    self._clock = BackendClock(backend)
                    self._backend = backend
        return self._backend

    def now(self) -> float:
        """The backend's clock, as this process estimates it (``clock.py``): what every
        eta, expiry and retry due time is taken on, so hosts' clocks are never compared."""
        backend = self.backend
        clock = self._clock
        if clock is None or clock.backend is not backend:
            clock = self._clock = BackendClock(backend)
        return clock.now()

    def flush(self, timeout: Optional[float] = None) -> int:
        """Wait until sent tasks are delivered to the broker; returns how many are still pending."""
        return self._broker.flush(timeout) if self._broker is not None else 0

    def close(self) -> None:
        """Flush and release connections."""
        with self._lock:
            broker, backend = self._broker, self._backend
            self._broker = self._backend = None
        if broker is not None:
            self.deliveries.stop()
            broker.close()
        if backend is not None:
            backend.close()

    # ------------------------------------------------------------------ registry
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundTaskDecorator: ...

    @overload
    def task(self, *, bind: Literal[False] = ..., **options: Any) -> TaskDecorator: ...

    def task(self, fn: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(max_retries=5, ...)``.

        Options: ``name``, ``max_retries`` (default 3), ``retry_backoff``, ``retry_delay``,
        ``retry_backoff_max``, ``retry_jitter``, ``autoretry_for``, ``dont_autoretry_for``,
        ``queue``, ``time_limit``, ``expires``, ``dedupe``, ``bind``, ``rate_limit``,
        ``concurrency_limit`` and ``concurrency_key`` (docs/flow-control.md), ``priority``
        (0..9, higher runs first).
        """
        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            name = options.pop("name", None) or default_task_name(func)
            cls = AsyncTask if inspect.iscoroutinefunction(func) else Task
            task: Task[Any, Any] = cls(self, func, build_options(name, self._task_defaults, options,
                                                                 func))
            registry.add(self.tasks, self._aliases, name, task, func)
            return task

        if fn is not None:
            if options:
                raise ConfigurationError("use @app.task or @app.task(**options)")
            return register(fn)
        return register

    def resolve(self, name: str) -> Task[Any, Any]:
        """The task registered as ``name`` (or under the unambiguous short name ``name``).

        Raises:
            NotRegistered: no such task.
        """
        return registry.resolve(self.tasks, self._aliases, name)

    # ------------------------------------------------------------------ sending
    def lookup(self, name: str) -> Optional[Task[Any, Any]]:
        """The task registered as ``name`` or under that unambiguous short name, else ``None``.

        Raises:
            NotRegistered: the short name is ambiguous.
        """
        task = self.tasks.get(name)
        if task is None and name in self._aliases:
            task = self.resolve(name)
        return task

    def send_task(self, name: str, args: Any = (), kwargs: Optional[dict[str, Any]] = None,
                  **options: Any) -> _AsyncResult[Any]:
        """Send a task by name, without importing its code.

        Options are those of :meth:`Task.apply_async`.
        """
        task = self.lookup(name)
        return self.submit(task.name if task else name, tuple(args), dict(kwargs or {}),
                           task=task, **options)

    def send_many(self, calls: Iterable[Any]) -> list[_AsyncResult[Any]]:
        """Send many tasks in one go: one encode pass, one broker call for those due now
        (Kafka: queued without a flush per message; SQLite: one transaction) and one backend
        call for those with a countdown or eta. Much faster than ``.delay()`` in a loop.

        Each call is a signature (``add.s(2, 3)``, ``add.s(1, 2).set(countdown=5)``) or a
        tuple ``(task_or_name, args[, kwargs[, options]])`` with the options of
        :meth:`Task.apply_async`. Returns their ``AsyncResult`` handles, in order. Signatures
        with ``link``/``link_error`` (or other canvas options) are sent one by one, after
        the rest.

        Raises:
            SerializationError: an argument cannot be carried (nothing is sent).
            ConfigurationError: a call of the wrong shape or with an unknown option
                (nothing is sent).
        """
        with collector_paused():  # tens of thousands of new objects, none garbage
            return sending.send_many(self, calls)

    def submit(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        task: Optional[Task[Any, Any]] = None,
        countdown: Optional[float] = None,
        eta: Optional[Union[datetime, float]] = None,
        expires: Optional[Union[datetime, float]] = None,
        task_id: Optional[str] = None,
        queue: Optional[str] = None,
        key: Optional[str] = None,
        dedupe_key: Optional[str] = None,
        max_retries: Optional[int] = None,
        time_limit: Optional[float] = None,
        priority: Optional[int] = None,
    ) -> _AsyncResult[Any]:
        """Encode and send one task; what ``delay``/``apply_async``/``send_task`` share.

        Raises:
            SerializationError: an argument cannot be carried (nothing is sent).
            ConfigurationError: ``priority`` is not an integer from 0 to 9.
        """
        now = self.now()
        item = sending.prepare(self, name, args, kwargs, now, task=task, countdown=countdown,
                               eta=eta, expires=expires, task_id=task_id, queue=queue, key=key,
                               dedupe_key=dedupe_key, max_retries=max_retries,
                               time_limit=time_limit, priority=priority)
        return sending.send_one(self, item, now)

    def AsyncResult(self, task_id: Union[str, _AsyncResult[Any]]) -> _AsyncResult[Any]:
        """A handle on the task with this id."""
        return AsyncResult(str(task_id), self)

    def send_canvas(self, canvas: Canvas, args: Iterable[Any] = (),
                    kwargs: Optional[dict[str, Any]] = None,
                    options: Optional[dict[str, Any]] = None) -> Union[_AsyncResult[Any], GroupResult]:
        """Send a chain, group, chord or signature with callbacks (``yadtq.canvas.send``);
        what their ``apply_async`` calls."""
        return send_canvas(canvas, args, kwargs, options)

    def GroupResult(self, group_id: Union[str, GroupResult]) -> GroupResult:
        """Reopen a group (or a chord's header) by its id, from any process.

        Raises:
            GroupNotFound: no group stored under that id (unknown or expired).
        """
        return GroupResult.restore(str(group_id), self)

    # ------------------------------------------------------------------ seed-compatible helpers
    def status(self, task_id: Union[str, _AsyncResult[Any]]) -> str:
        """The state of a task (``queued`` if no worker has seen it yet)."""
        return self.AsyncResult(task_id).state

    def value(self, task_id: Union[str, _AsyncResult[Any]]) -> Any:
        """The result of a finished task (its exception if it failed), else ``None``."""
        return self.AsyncResult(task_id).result

    def purge(self, queue: Optional[str] = None) -> int:
        """Drop the tasks waiting in ``queue`` (default queue if not given)."""
        return self.broker.purge(queue or self.settings.default_queue)

    def worker_state(self, info: WorkerInfo, now: Optional[float] = None) -> str:
        """``alive``, ``unresponsive`` or ``offline`` for one worker report.

        Judged by :attr:`WorkerInfo.silent`, which the backend measures on its own clock
        (``now`` is not used: comparing this host's clock with a heartbeat's would
        make clock skew look like silence).
        """
        return liveness.judge(info, self.settings.worker_unresponsive_after)

    def get_worker_status(self) -> dict[str, dict[str, Any]]:
        """Every known worker: ``status`` (alive/unresponsive/offline), ``last_heartbeat``,
        ``tasks_done``, ``tasks_failed``, ``active`` and more."""
        return liveness.status_table(self)

    def worker_failures(self, limit: int = 100) -> list[WorkerFailure]:
        """Workers that stopped heartbeating without a clean shutdown, newest first."""
        return self.backend.failures(limit)

    def display_worker_status(self) -> None:
        """Print the worker status as a table."""
        from .cli.render import print_worker_table

        print_worker_table(self.get_worker_status())

    # ------------------------------------------------------------------ periodic tasks
    @overload
    def periodic_task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def periodic_task(self, *, cron: Optional[str] = None, every: Optional[float] = None,
                      timezone: str = "UTC", catch_up: str = CATCH_UP_ONCE,
                      name: Optional[str] = None, args: tuple[Any, ...] = (),
                      kwargs: Optional[dict[str, Any]] = None, **options: Any) -> TaskDecorator: ...

    def periodic_task(self, fn: Optional[Callable[..., Any]] = None, *, cron: Optional[str] = None,
                      every: Optional[float] = None, timezone: str = "UTC",
                      catch_up: str = CATCH_UP_ONCE, name: Optional[str] = None,
                      args: tuple[Any, ...] = (), kwargs: Optional[dict[str, Any]] = None,
                      **options: Any) -> Any:
        """Register a task that runs on a schedule: ``@app.periodic_task(cron="*/5 * * * *",
        timezone="Europe/Berlin")`` or ``@app.periodic_task(every=30)``.

        The schedule is named after the task (``name=`` overrides), ``args``/``kwargs`` are
        what each tick passes, ``catch_up`` is ``"once"`` (a tick missed while no worker ran
        runs once when one returns) or ``"none"``; other options go to ``@app.task``.
        Workers save the schedule in the backend when they start (``docs/periodic.md``).

        Raises:
            ConfigurationError: a bad cron expression, timezone, ``every`` or ``catch_up``.
        """
        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            task: Task[Any, Any] = self.task(**options)(func)
            schedules.declare(self, name or task.name, task, cron=cron, every=every, timezone=timezone,
                    catch_up=catch_up, args=args, kwargs=kwargs)
            return task

        return register(fn) if fn is not None else register

    def add_periodic_task(self, name: str, task: Any, *, cron: Optional[str] = None,
                          every: Optional[float] = None, timezone: str = "UTC",
                          catch_up: str = CATCH_UP_ONCE, queue: Optional[str] = None) -> Schedule:
        """Declare schedule ``name`` running ``task`` (a task, its name, or a signature such
        as ``cleanup.s(days=7)``) on ``cron`` or ``every`` seconds. Workers save it in the
        backend when they start; ``yadtq schedule add`` saves one without code.

        Raises:
            ConfigurationError: a bad spec.
        """
        return schedules.declare(self, name, task, cron=cron, every=every, timezone=timezone,
                       catch_up=catch_up, queue=queue)

    def periodic_tasks(self) -> list[schedules.ScheduleInfo]:
        """The schedules stored in the backend, each with ``name``, ``next_run``, ``paused``,
        ``last_run`` and ``last_task_id``."""
        return schedules.listing(self)

    def pause_periodic_task(self, name: str) -> None:
        """Stop schedule ``name`` from firing (cluster-wide) until resumed."""
        schedules.pause(self, name)

    def resume_periodic_task(self, name: str) -> None:
        """Let schedule ``name`` fire again from its next tick after now."""
        schedules.resume(self, name)

