"""Periodic schedules as the app, the CLI and the dashboard see them: declare, list,
pause, resume, remove, run now (``app.periodic_tasks()`` and friends delegate here).

The storage is the backend's (``transports/periodic_store.py``); the specs and tick
arithmetic are ``periodic.py``'s; the ticker is ``worker/ticker.py``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .exceptions import ConfigurationError
from .periodic import CATCH_UP_ONCE, Schedule
from .transports.periodic_store import PeriodicEntry, periodic_store

if TYPE_CHECKING:
    from .app import YADTQ
    from .result import AsyncResult

logger = logging.getLogger(__name__)


class UnknownSchedule(ConfigurationError):
    """No periodic schedule of that name is stored in the backend."""


@dataclass(frozen=True)
class ScheduleInfo:
    """One stored periodic schedule, as ``app.periodic_tasks()`` returns it."""

    name: str
    #: When the next tick is due (seconds since the epoch, backend clock).
    next_run: float
    paused: bool
    #: The tick time of the last tick enqueued, and that task's id (``None``: never ran).
    last_run: Optional[float]
    last_task_id: Optional[str]
    #: The schedule's spec; ``None`` when the stored spec is unreadable.
    schedule: Optional[Schedule]

    @property
    def task(self) -> Optional[str]:
        return self.schedule.task if self.schedule is not None else None

    def describe(self) -> str:
        """``every 30 s`` / ``cron '0 3 * * *' UTC`` (``?`` when unreadable)."""
        return self.schedule.describe() if self.schedule is not None else "?"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (epoch-second times), for ``--json`` outputs and the dashboard."""
        s = self.schedule
        return {"name": self.name, "task": self.task, "schedule": self.describe(),
                "cron": s.cron if s else None, "every": s.every if s else None,
                "timezone": s.timezone if s else None, "args": list(s.args) if s else None,
                "kwargs": dict(s.kwargs) if s else None, "catch_up": s.catch_up if s else None,
                "queue": s.queue if s else None, "paused": self.paused, "next_run": self.next_run,
                "last_run": self.last_run, "last_task_id": self.last_task_id}


def _info(entry: PeriodicEntry) -> ScheduleInfo:
    try:
        schedule: Optional[Schedule] = Schedule.decode(entry.name, entry.spec)
    except ConfigurationError:
        schedule = None
    return ScheduleInfo(entry.name, entry.next_run, entry.paused, entry.last_run,
                        entry.last_task_id, schedule)


def task_name(target: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """(task name, args, kwargs) of a task, a task name or a signature (``task.s(...)``)."""
    if isinstance(target, str):
        return target, (), {}
    inner = getattr(target, "task", None)
    if inner is not None and hasattr(target, "args"):  # a signature
        name = inner if isinstance(inner, str) else getattr(inner, "name", None)
        if isinstance(name, str):
            return name, tuple(target.args), dict(getattr(target, "kwargs", None) or {})
    name = getattr(target, "name", None)
    if isinstance(name, str) and callable(target):  # a task
        return name, (), {}
    raise ConfigurationError(f"not a task, task name or signature: {target!r}")


def declare(app: YADTQ, name: str, target: Any, *, cron: Optional[str] = None,
            every: Optional[float] = None, timezone: str = "UTC", catch_up: str = CATCH_UP_ONCE,
            args: Optional[tuple[Any, ...]] = None, kwargs: Optional[dict[str, Any]] = None,
            queue: Optional[str] = None) -> Schedule:
    """Declare a schedule in the app: workers running this app save it at start."""
    task, sig_args, sig_kwargs = task_name(target)
    schedule = Schedule(name, task, tuple(args) if args is not None else sig_args,
                        dict(kwargs) if kwargs is not None else sig_kwargs, cron,
                        float(every) if every is not None else None, timezone, catch_up, queue)
    schedule.encode()  # raises SerializationError now, not in a worker
    app.periodic_schedules[name] = schedule
    return schedule


def save(app: YADTQ, schedule: Schedule) -> bool:
    """Store ``schedule`` in the backend now (``yadtq schedule add``); whether it changed."""
    return periodic_store(app.backend).save_periodic(schedule.name, schedule.encode(),
                                                     schedule.next_after(app.now()))


def listing(app: YADTQ) -> list[ScheduleInfo]:
    """Every schedule stored in the backend, by name.

    Raises:
        ConfigurationError: the backend keeps no periodic schedules.
    """
    return [_info(e) for e in periodic_store(app.backend).periodic_entries()]


def listing_if_kept(app: YADTQ) -> list[ScheduleInfo]:
    """:func:`listing`, or an empty list on a backend that keeps no schedules (the monitor)."""
    try:
        store = periodic_store(app.backend)
    except ConfigurationError:
        return []
    return [_info(e) for e in store.periodic_entries()]


def find(app: YADTQ, name: str) -> ScheduleInfo:
    """The stored schedule ``name``.

    Raises:
        UnknownSchedule: there is none.
    """
    for info in listing(app):
        if info.name == name:
            return info
    raise UnknownSchedule(f"no periodic schedule named {name!r}")


def pause(app: YADTQ, name: str) -> None:
    """Stop schedule ``name`` from firing until resumed.

    Raises:
        UnknownSchedule: there is none.
    """
    if not periodic_store(app.backend).pause_periodic(name, True):
        raise UnknownSchedule(f"no periodic schedule named {name!r}")


def resume(app: YADTQ, name: str) -> None:
    """Let schedule ``name`` fire again, from its next tick after now (ticks that fell
    while it was paused are not caught up).

    Raises:
        UnknownSchedule: there is none.
    """
    info = find(app, name)
    next_run = info.schedule.next_after(app.now()) if info.schedule is not None else None
    if not periodic_store(app.backend).pause_periodic(name, False, next_run):
        raise UnknownSchedule(f"no periodic schedule named {name!r}")


def remove(app: YADTQ, name: str) -> None:
    """Delete schedule ``name`` from the backend (a worker whose app still declares it
    saves it again when it starts).

    Raises:
        UnknownSchedule: there is none.
    """
    if not periodic_store(app.backend).remove_periodic(name):
        raise UnknownSchedule(f"no periodic schedule named {name!r}")


def run_now(app: YADTQ, name: str) -> AsyncResult[Any]:
    """Send schedule ``name``'s task once now, outside its ticks.

    Raises:
        UnknownSchedule: there is none (or its spec is unreadable).
    """
    info = find(app, name)
    if info.schedule is None:
        raise UnknownSchedule(f"periodic schedule {name!r} has an unreadable spec")
    s = info.schedule
    return app.send_task(s.task, s.args, dict(s.kwargs), queue=s.queue)

