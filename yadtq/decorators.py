"""What ``@app.task`` returns, for type checkers: a decorator that keeps the function's
parameters and return type (``YADTQ.task`` and ``YADTQ.periodic_task`` overloads use them)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Callable, Protocol, TypeVar, overload

from typing_extensions import Concatenate, ParamSpec

from .task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: keeps the function's parameters and return type
    (for an ``async def``, the type its coroutine returns)."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class BoundTaskDecorator(Protocol):
    """What ``@app.task(bind=True, ...)`` returns: the first parameter (the task) is dropped."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R], /) -> Task[P, R]: ...
