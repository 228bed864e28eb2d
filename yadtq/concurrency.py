"""Concurrency limits per key (DESIGN.md section 12): the spec, checked at decoration,
and the key of one call.

``@app.task(concurrency_limit=2, concurrency_key="tenant")``: at most 2 tasks of that
name with the same value of the argument ``tenant`` run at once across the cluster.
The slots are kept by the backend (``ConcurrencyBackend`` in
transports/slots_store.py), taken by a worker right before it claims the task and
given back when the task's outcome is stored; a task over the limit waits in the
backend, in order, and goes into the schedule when a slot frees.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Callable, Optional, Union

from .exceptions import ConfigurationError

#: ``concurrency_key``: an argument name, or a callable of the task's arguments.
KeySpec = Union[str, Callable[..., Any]]
#: Why a task waits (shown by ``inspect`` and the monitor), like ``flow.WAIT_RATE_LIMIT``.
WAIT_CONCURRENCY = "concurrency_limit"
#: Separates the task name from the key value in a slot key (neither shows it).
KEY_SEPARATOR = "\x1f"
#: Longest key value kept as it is (a longer one is shortened: see ``slot_key``).
MAX_KEY_TEXT = 200


def check_concurrency(name: str, fn: Optional[Callable[..., Any]], limit: Any, key: Any,
                      bind: bool = False) -> None:
    """Validate ``concurrency_limit`` / ``concurrency_key`` of task ``name``.

    Raises:
        ConfigurationError: the limit is not an int >= 1, a key is given without a limit,
            or the key is neither a callable nor the name of an argument of ``fn``.
    """
    if limit is None:
        if key is not None:
            raise ConfigurationError(f"task {name!r}: concurrency_key needs a concurrency_limit")
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"task {name!r}: concurrency_limit {limit!r} is not an int >= 1")
    if key is None or callable(key):
        return
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"task {name!r}: concurrency_key {key!r} is neither an argument "
                                 "name nor a callable")
    if fn is None:
        return
    params = list(inspect.signature(fn).parameters.values())
    if bind and params:
        params = params[1:]  # the task itself
    named = [p.name for p in params
             if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if key not in named and not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        raise ConfigurationError(f"task {name!r}: concurrency_key {key!r} is not an argument of "
                                 f"{getattr(fn, '__name__', name)}({', '.join(named)})")


def key_value(fn: Callable[..., Any], key: Optional[KeySpec], args: tuple[Any, ...],
              kwargs: dict[str, Any], bind: bool = False) -> str:
    """The key value of one call: ``""`` without a key (one limit for the task), the
    argument's value (default applied) as text, or what the callable returns as text.

    Raises:
        TypeError: the arguments do not fit the function (the task would fail anyway).
        Exception: whatever the key callable raises.
    """
    if key is None:
        return ""
    if callable(key):
        return str(key(*args, **kwargs))
    if key in kwargs:
        return str(kwargs[key])
    bound = inspect.signature(fn).bind(*((None, *args) if bind else args), **kwargs)
    bound.apply_defaults()
    if key in bound.arguments:
        return str(bound.arguments[key])
    return str(bound.kwargs.get(key, ""))


def slot_key(task: str, value: str) -> str:
    """The backend's name of one limit: the task name and the key value (a value longer
    than ``MAX_KEY_TEXT`` characters by its start and a digest of the whole)."""
    if len(value) > MAX_KEY_TEXT:
        value = display_value(value) + hashlib.sha256(value.encode(errors="replace")).hexdigest()
    return f"{task}{KEY_SEPARATOR}{value}"


def display_value(value: str) -> str:
    """A key value as stored for display: at most ``MAX_KEY_TEXT`` characters."""
    return value if len(value) <= MAX_KEY_TEXT else value[:MAX_KEY_TEXT - 3] + "..."


def waiting_reason(limit: int, key: Optional[KeySpec], value: str) -> str:
    """Why a task waits: ``concurrency_limit 2 tenant=acme`` (``key=`` for a callable)."""
    if key is None:
        return f"{WAIT_CONCURRENCY} {limit}"
    label = key if isinstance(key, str) else "key"
    return f"{WAIT_CONCURRENCY} {limit} {label}={value}"
