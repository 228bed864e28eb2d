"""The app's task registry: a task under its full name and its function's short name,
and finding it by either (``YADTQ.task``, ``YADTQ.resolve``, ``YADTQ.lookup``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from .exceptions import ConfigurationError, NotRegistered
from .naming import default_task_name

if TYPE_CHECKING:
    from .task import Task


def add(tasks: dict[str, Task[Any, Any]], aliases: dict[str, set[str]], name: str,
        task: Task[Any, Any], func: Callable[..., Any]) -> None:
    """Register ``task`` (of function ``func``) as ``name`` in ``tasks``, and ``name``
    under the function's short name in ``aliases``.

    Raises:
        ConfigurationError: another function is registered as ``name``.
    """
    check_unique(tasks, name, func)
    tasks[name] = task
    short = func.__name__
    # Short names ("add") work for send_task and the CLI when they are unambiguous.
    aliases.setdefault(short, set()).add(name)


def check_unique(tasks: Mapping[str, Task[Any, Any]], name: str, func: Callable[..., Any]) -> None:
    """Two functions under one name is an error; the same function again (a module
    reloaded) replaces its earlier registration."""
    earlier = tasks.get(name)
    if earlier is None:
        return
    same = (default_task_name(earlier.fn) == default_task_name(func)
            and getattr(earlier.fn, "__module__", None) == getattr(func, "__module__", None))
    if not same:
        raise ConfigurationError(
            f"two tasks named {name!r}: {default_task_name(earlier.fn)} and "
            f"{default_task_name(func)} (give one another name=...)")


def resolve(tasks: Mapping[str, Task[Any, Any]], aliases: Mapping[str, set[str]],
            name: str) -> Task[Any, Any]:
    """The task registered as ``name`` (or under the unambiguous short name ``name``).

    Raises:
        NotRegistered: no such task.
    """
    task = tasks.get(name)
    if task is not None:
        return task
    full = aliases.get(name, set())
    if len(full) == 1:
        return tasks[next(iter(full))]
    if len(full) > 1:
        raise NotRegistered(f"task name {name!r} is ambiguous: {', '.join(sorted(full))}")
    raise NotRegistered(f"no task named {name!r} (registered: {', '.join(sorted(tasks)) or 'none'})")
