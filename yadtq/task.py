"""Tasks: the ``@app.task`` decorator's product, its options, signatures and the request context."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Generic, NoReturn, Optional, TypeVar, Union

from typing_extensions import ParamSpec

from . import sending
from .canvas.signature import CHUNK_TASK, Signature, group
from .concurrency import KeySpec, check_concurrency
from .envelope import Envelope, pack
from .exceptions import ConfigurationError, Retry, Revoked
from .flow import parse_rate_limit
from .priority import check_priority
from .running import progress_sender, revocations
from .transports.base import Progress

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .app import YADTQ
    from .result import AsyncResult
    from .settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

#: The custom state ``progress()`` reports (and ``update_state`` without a state).
PROGRESS = "PROGRESS"
#: Call shapes remembered per task as known to bind (see :meth:`Task.check_arguments`).
FITTING_SHAPES_KEPT = 64


@dataclass(frozen=True)
class TaskOptions:
    """How a task is run and retried. Defaults for retries come from the app's settings."""

    name: str
    max_retries: int = 3
    #: ``False``: a fixed ``retry_delay``; ``True``: exponential from ``retry_delay``;
    #: a number: exponential from that many seconds.
    retry_backoff: Union[bool, float] = False
    retry_delay: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    #: Exceptions that trigger an automatic retry; empty means every ``Exception``.
    autoretry_for: tuple[type[BaseException], ...] = ()
    #: Exceptions that never trigger a retry.
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    queue: Optional[str] = None
    #: Seconds before the worker kills the task (process pool).
    time_limit: Optional[float] = None
    #: Seconds after which ``SoftTimeLimitExceeded`` is raised inside the task (every pool).
    soft_time_limit: Optional[float] = None
    #: Seconds after submission past which the task is revoked instead of run.
    expires: Optional[float] = None
    dedupe: bool = False
    bind: bool = False
    #: Store no return value: the task ends ``success`` and ``get()`` returns ``None``.
    ignore_result: bool = False
    #: ``"N/s"``, ``"N/m"`` or ``"N/h"``: at most N starts in any such window, cluster-wide
    #: (DESIGN.md section 12; docs/flow-control.md).
    rate_limit: Optional[str] = None
    #: At most this many run at once per ``concurrency_key`` value, cluster-wide
    #: (DESIGN.md section 12; docs/flow-control.md).
    concurrency_limit: Optional[int] = None
    #: An argument name or a callable of the arguments; ``None``: one limit for the task.
    concurrency_key: Optional[KeySpec] = None
    #: 0..9, higher runs first (DESIGN.md section 12; docs/flow-control.md "Priorities").
    priority: int = 0


@dataclass(frozen=True)
class Request:
    """What a running task knows about its own invocation (``self.request``)."""

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    queue: str = "default"
    worker: Optional[str] = None
    eta: Optional[float] = None
    parent_id: Optional[str] = None
    root_id: Optional[str] = None
    #: The envelope's per-call options (``time_limit``, ``max_retries``, ``trace``...).
    options: dict[str, Any] = field(default_factory=dict)


class LazyRequest:
    """A running task's :class:`Request`, built from its envelope the first time it is
    asked for: most tasks never look at theirs, and building it up front was 1.3 us of
    every task a worker ran."""

    __slots__ = ("_envelope", "_request", "_worker")

    def __init__(self, envelope: Envelope, worker: Optional[str]) -> None:
        self._envelope = envelope
        self._worker = worker
        self._request: Optional[Request] = None

    def get(self) -> Request:
        request = self._request
        if request is None:
            e = self._envelope
            request = self._request = Request(
                id=e.id, task=e.task, args=e.args, kwargs=e.kwargs, retries=e.retries,
                queue=e.queue, worker=self._worker, eta=e.eta, parent_id=e.parent_id,
                root_id=e.root_id, options=e.options)
        return request


CurrentRequest = Union[Request, LazyRequest, None]

#: The running task's request: per thread, and per asyncio task (a context variable,
#: so many coroutines on one loop each see their own).
_request: contextvars.ContextVar[CurrentRequest] = contextvars.ContextVar("yadtq_request",
                                                                          default=None)


def current_request() -> Optional[Request]:
    """The request of the task running in this thread (or asyncio task), if any."""
    request = _request.get()
    return request.get() if isinstance(request, LazyRequest) else request


def set_current_request(request: CurrentRequest) -> contextvars.Token[CurrentRequest]:
    """Make ``request`` current; returns the token for :func:`reset_current_request`."""
    return _request.set(request)


def reset_current_request(token: contextvars.Token[CurrentRequest]) -> None:
    _request.reset(token)


class Task(Generic[P, R]):
    """A registered function. Calling it runs it here; ``delay`` sends it to a worker."""

    def __init__(self, app: YADTQ, fn: Callable[..., R], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = options.name
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", options.name)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__wrapped__ = fn
        #: What ``.delay()`` needs of the settings, kept while they stay the same
        #: (``sending.plain_route``).
        self.send_route: Optional[tuple[Settings, Optional[sending.PlainRoute]]] = None

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether the function is an ``async def`` (run on the worker's event loop)."""
        return inspect.iscoroutinefunction(self.fn)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The function's signature (computed once), for checking arguments before a run."""
        return inspect.signature(self.fn)

    @functools.cached_property
    def _fitting_shapes(self) -> set[tuple[int, tuple[str, ...]]]:
        """Call shapes (positional count, keyword names) known to bind."""
        return set()

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` unless the function accepts these arguments (the task
        itself comes first for ``bind=True``; it is not among ``args``).

        Whether arguments bind depends on their number and keyword names alone, so a
        shape that bound once is remembered (up to :data:`FITTING_SHAPES_KEPT`): a
        worker checks every attempt before it runs, and ``Signature.bind`` is a quarter
        of running a no-op task."""
        shape = (len(args), tuple(kwargs))
        fitting = self._fitting_shapes
        if shape in fitting:
            return
        self.signature.bind(*((self, *args) if self.options.bind else args), **kwargs)
        if len(fitting) < FITTING_SHAPES_KEPT:
            fitting.add(shape)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process, as a plain call."""
        return self.run(*args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> R:
        if self.options.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    @property
    def request(self) -> Request:
        """The current invocation (inside a running task)."""
        request = current_request()
        if request is None:
            return Request(id="", task=self.name)
        return request

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task to a worker with these arguments; returns at once."""
        return sending.delay(self, args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` for asyncio code: ``await add.adelay(2, 3)`` sends without blocking the loop."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(self, args: Any = (), kwargs: Optional[dict[str, Any]] = None,
                           **options: Any) -> AsyncResult[R]:
        """``apply_async`` for asyncio code (the send runs in a thread: brokers are blocking clients)."""
        return await asyncio.to_thread(
            functools.partial(self.apply_async, args, kwargs, **options))

    def apply_async(
        self,
        args: Any = (),
        kwargs: Optional[dict[str, Any]] = None,
        *,
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
        link: Any = None,
        link_error: Any = None,
    ) -> AsyncResult[R]:
        """Send the task with options.

        Args:
            countdown: seconds from now before it may run.
            eta: when it may run (a datetime, or epoch seconds).
            expires: seconds from now, or a datetime, after which it is revoked instead of run.
            task_id: use this id instead of a new one.
            queue: the queue (Kafka topic ``yadtq.<queue>``) to send it to.
            key: routing key; tasks with one key land on one partition, in order.
            dedupe_key: return an earlier task's id while it is queued, running or succeeded.
            priority: 0..9, higher runs first (default: the task's ``priority``, else 0).
            link: signature(s) sent with this task's result as first argument once it succeeds.
            link_error: signature(s) sent with this task's id as first argument if it fails.

        Raises:
            SerializationError: an argument cannot be carried by the wire format.
            ConfigurationError: a bad option value (``priority`` outside 0..9).
        """
        if link is not None or link_error is not None:
            options = {k: v for k, v in (
                ("countdown", countdown), ("eta", eta), ("expires", expires), ("task_id", task_id),
                ("queue", queue), ("key", key), ("max_retries", max_retries),
                ("time_limit", time_limit), ("priority", priority), ("link", link),
                ("link_error", link_error),
            ) if v is not None}
            if dedupe_key is not None:
                raise ConfigurationError("dedupe_key cannot be combined with link/link_error")
            return Signature(self, tuple(args), dict(kwargs or {}), options).apply_async()
        return self.app.submit(
            self.name, tuple(args), dict(kwargs or {}), countdown=countdown, eta=eta,
            expires=expires, task_id=task_id, queue=queue, key=key, dedupe_key=dedupe_key,
            max_retries=max_retries, time_limit=time_limit, priority=priority, task=self,
        )  # type: ignore[return-value]

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """``delay`` once the current Django database transaction commits (at once
        outside one); nothing is sent if it rolls back (``yadtq.contrib.django``).

        Raises:
            SerializationError: an argument cannot be carried (checked now, not at commit).
            ConfigurationError: Django is not installed or not configured.
        """
        self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(self, args: Any = (), kwargs: Optional[dict[str, Any]] = None, *,
                              using: Optional[str] = None, **options: Any) -> None:
        """``apply_async`` once the current transaction of Django database ``using``
        (the default one if not given) commits; nothing is sent if it rolls back. Give
        ``task_id=`` to know the id of the task it will send.

        Raises:
            SerializationError: an argument cannot be carried (checked now, not at commit).
            ConfigurationError: Django is not installed or not configured.
        """
        from .contrib.django import on_commit

        args, kwargs = tuple(args), dict(kwargs or {})
        pack([list(args), kwargs])  # a bad argument fails here, in the caller's code
        on_commit(functools.partial(self.apply_async, args, kwargs, **options), using=using)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature: this task with (some of) its arguments, to be sent later or
        composed (in a chain it gets the previous result as its first argument)."""
        return Signature(self, tuple(args), dict(kwargs))

    def update_state(self, state: Optional[str] = None, meta: Optional[dict[str, Any]] = None) -> None:
        """Inside a bound task: report a custom state (``"PROGRESS"`` if not given) and a
        ``meta`` dict, shown by ``AsyncResult.state``/``.meta`` while the task runs.

        Updates are throttled (at most about one write per second per task; the
        latest wins), so calling this often is cheap.

        Raises:
            Revoked: the task was revoked with ``terminate=True`` (stop now).
            SerializationError: ``meta`` cannot be carried by the wire format.
            ConfigurationError: not called from a running task.
        """
        request = self._running_request("update_state")
        packed = pack(meta) if meta is not None else None
        progress_sender.report(self.app, Progress(request.id, request.retries, state or PROGRESS,
                                                  packed, time.time()))

    def progress(self, done: float, total: Optional[float] = None) -> None:
        """Inside a bound task: report ``done`` of ``total`` (``AsyncResult.progress``);
        ``update_state("PROGRESS", {"done": done, "total": total})``.

        Raises:
            Revoked: the task was revoked with ``terminate=True`` (stop now).
        """
        self.update_state(PROGRESS, {"done": done, "total": total})

    def is_revoked(self) -> bool:
        """Inside a running task: whether it was revoked with ``terminate=True`` (a
        thread-pool task should then stop; the other pools stop it themselves)."""
        request = current_request()
        return request is not None and request.id in revocations

    def _running_request(self, what: str) -> Request:
        request = current_request()
        if request is None or not request.id:
            raise ConfigurationError(f"{what}() works only inside a running task")
        if request.id in revocations:
            raise Revoked(f"task {request.id} revoked (terminate)")
        return request

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: in a chain it ignores the previous result."""
        return Signature(self, tuple(args), dict(kwargs), immutable=True)

    def map(self, items: Iterable[Any]) -> group:
        """A group calling the task once per item: ``add1.map([1, 2, 3])``."""
        return group(self.s(item) for item in items)

    def starmap(self, items: Iterable[Iterable[Any]]) -> group:
        """A group calling the task once per argument tuple: ``add.starmap([(1, 2), (3, 4)])``."""
        return group(self.s(*item) for item in items)

    def chunks(self, items: Iterable[Iterable[Any]], size: int) -> group:
        """A group of tasks, each calling this task for ``size`` argument tuples in one go;
        its result is a list of lists (one per chunk)."""
        if size < 1:
            raise ConfigurationError("chunks: size must be at least 1")
        pending = [list(item) for item in items]
        runner = self.app.tasks[CHUNK_TASK]
        return group(runner.s(self.name, pending[i:i + size]) for i in range(0, len(pending), size))

    def retry(
        self,
        exc: Optional[BaseException] = None,
        *,
        countdown: Optional[float] = None,
        max_retries: Optional[int] = None,
    ) -> NoReturn:
        """Inside a bound task: end this attempt and schedule another.

        Raises:
            Retry: always; the worker turns it into a new attempt, or a failure
                with ``exc`` once ``max_retries`` is reached.
        """
        raise Retry(exc, countdown=countdown, max_retries=max_retries)


class AsyncTask(Task[P, R]):
    """A task whose function is ``async def``: ``delay(...).get()`` gives what the coroutine
    returns, and calling it here gives the coroutine (await it)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:  # type: ignore[override]
        return self.run(*args, **kwargs)  # type: ignore[return-value]


def build_options(name: str, defaults: TaskOptions, overrides: dict[str, Any],
                  fn: Optional[Callable[..., Any]] = None) -> TaskOptions:
    """Task options from app defaults and decorator arguments (``fn``: the task's function,
    whose signature ``concurrency_key`` must name an argument of).

    Raises:
        ConfigurationError: an unknown option or a bad value.
    """
    known = set(TaskOptions.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigurationError(f"task {name!r}: unknown option(s) {', '.join(unknown)}")
    for opt in ("autoretry_for", "dont_autoretry_for"):
        value = overrides.get(opt)
        if isinstance(value, type):
            overrides[opt] = (value,)
        elif value is not None:
            overrides[opt] = tuple(value)
            if not all(isinstance(t, type) and issubclass(t, BaseException) for t in overrides[opt]):
                raise ConfigurationError(f"task {name!r}: {opt} must list exception types")
    options = replace(defaults, name=name, **overrides)
    if options.rate_limit is not None:
        try:
            parse_rate_limit(options.rate_limit)
        except ConfigurationError as exc:
            raise ConfigurationError(f"task {name!r}: {exc}") from None
    check_concurrency(name, fn, options.concurrency_limit, options.concurrency_key, options.bind)
    check_priority(options.priority, f"task {name!r}")
    if options.max_retries < 0:
        raise ConfigurationError(f"task {name!r}: max_retries must not be negative")
    if options.time_limit is not None and options.time_limit <= 0:
        raise ConfigurationError(f"task {name!r}: time_limit must be positive")
    if options.soft_time_limit is not None and options.soft_time_limit <= 0:
        raise ConfigurationError(f"task {name!r}: soft_time_limit must be positive")
    return options
