"""Checking a task call typed on the command line before anything is sent."""

from __future__ import annotations

import inspect
from typing import Any, Optional

from ..task import Task


def task_signature(task: Task[Any, Any]) -> Optional[inspect.Signature]:
    """The parameters a caller passes: the function's, without the task itself if bound."""
    try:
        signature = task.signature
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if task.options.bind:
        params = params[1:]
    return signature.replace(parameters=params)


def check_arguments(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Make sure the task's function accepts these arguments, before anything is sent.

    Raises:
        ValueError: it does not (the message shows the task's usage).
    """
    try:
        task.check_arguments(args, kwargs)
    except TypeError as exc:
        raise ValueError(f"{exc} (usage: {task_usage(task)})") from None


def task_usage(task: Task[Any, Any], name: Optional[str] = None) -> str:
    """``add x y``, ``greet name [punctuation='!']``, ``log [args...] [key=value...]``."""
    parts = [name or task.__name__]
    signature = task_signature(task)
    for param in signature.parameters.values() if signature is not None else ():
        if param.kind is param.VAR_POSITIONAL:
            parts.append(f"[{param.name}...]")
        elif param.kind is param.VAR_KEYWORD:
            parts.append("[key=value...]")
        elif param.default is not param.empty:
            parts.append(f"[{param.name}={param.default!r}]")
        elif param.kind is param.KEYWORD_ONLY:
            parts.append(f"{param.name}=VALUE")
        else:
            parts.append(param.name)
    return " ".join(parts)
