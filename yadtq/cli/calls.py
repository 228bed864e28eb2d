"""Reading and checking a task call typed on the command line before anything is sent:
its arguments (``yadtq submit``, ``schedule add``, the shell), its task's name and queue."""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import click

from ..envelope import pack
from ..exceptions import ConfigurationError, NotRegistered, SerializationError
from ..task import Task

if TYPE_CHECKING:
    from ..app import YADTQ


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


def parse_arg(text: str) -> Any:
    """A command-line task argument: JSON, else a Python literal, else the string itself.

    ``"2"`` -> ``2``, ``"[1, 2]"`` -> ``[1, 2]``, ``"(1, 2)"`` -> ``(1, 2)``, ``"bob"`` -> ``"bob"``.
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def check_serializable(raw: Sequence[str], values: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """Name the argument the wire format cannot carry (e.g. an integer beyond 64 bits).

    Raises:
        ConfigurationError: ``argument N (TEXT): why`` or ``--kwargs KEY: why``.
    """
    for number, (text, value) in enumerate(zip(raw, values), start=1):
        try:
            pack(value)
        except SerializationError as exc:
            raise ConfigurationError(f"argument {number} ({text}): {exc}") from None
    for key, value in kwargs.items():
        try:
            pack(value)
        except SerializationError as exc:
            raise ConfigurationError(f"--kwargs {key}: {exc}") from None


def check_call(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse, before sending, a call the task's function cannot accept.

    Raises:
        ConfigurationError: wrong arguments (the message shows the task's usage).
    """
    try:
        check_arguments(task, args, kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"{task.__name__}: {exc}") from None


def resolve_name(app: YADTQ, name: str) -> str:
    """The full name to send ``name`` as.

    A registered name or unambiguous short name (``add``) resolves locally; a dotted name
    this app does not register is sent as is, for workers that do.

    Raises:
        NotRegistered: an unknown short name, or an ambiguous one.
    """
    try:
        return app.resolve(name).name
    except NotRegistered:
        if "." in name and name not in app.tasks:
            return name
        raise


def queue_of(app: YADTQ, name: str, queue: Optional[str]) -> str:
    """The queue a task sent without an explicit queue goes to."""
    task = app.tasks.get(name)
    return queue or (task.options.queue if task is not None and task.options.queue else None) \
        or app.settings.default_queue


def parse_kwargs(text: Optional[str]) -> dict[str, Any]:
    """The ``--kwargs`` option: a JSON object, or none.

    Raises:
        click.BadParameter: not JSON, or not an object.
    """
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint="'--kwargs'") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"expected a JSON object, got {json_type(value)}", param_hint="'--kwargs'")
    return value


def json_type(value: Any) -> str:
    """What a JSON value is, for error messages: ``an object``, ``a list``..."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
