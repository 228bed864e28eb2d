"""``yadtq submit``, ``status``, ``result`` and ``purge``: the client commands."""

from __future__ import annotations

import ast
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .. import states
from ..envelope import pack
from ..exceptions import BrokerUnavailable, ConfigurationError, NotRegistered, SerializationError
from ..exceptions import TimeoutError as ResultTimeout
from .calls import check_arguments
from .hints import before_sending, warn_unconsumed
from .loading import load_app
from .options import app_option, ask, interactive, queues_option, split_queues
from .render import (
    STATE_STYLES,
    format_call,
    format_error,
    format_value,
    stderr_console,
    stdout_console,
    styled,
)

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..result import AsyncResult
    from ..task import Task

#: ``yadtq result``: the task has not finished (and --wait was not given).
EXIT_NOT_READY = 3
#: Seconds to wait for the broker to confirm sent tasks.
FLUSH_TIMEOUT = 30.0
#: Console width from which the results table shows whole task ids.
WIDE_TABLE = 120
#: Characters of a task id a narrower table shows.
SHORT_ID = 10
#: Fields a task entry of a ``--file`` may have.
ENTRY_FIELDS = ("task", "args", "kwargs", "countdown", "queue", "key")


class TaskFailed(click.ClickException):
    """A task the command waited for failed or was revoked: one line, exit 1."""


# --------------------------------------------------------------------------- helpers


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


def flush(app: YADTQ) -> None:
    """Wait until the broker has every sent task.

    Raises:
        BrokerUnavailable: some were not confirmed within ``FLUSH_TIMEOUT`` seconds.
    """
    pending = app.flush(FLUSH_TIMEOUT)
    if pending:
        raise BrokerUnavailable(f"{pending} tasks not confirmed by the broker after {FLUSH_TIMEOUT:.0f} s")


def outcome(result: AsyncResult[Any], timeout: Optional[float]) -> tuple[str, Any]:
    """Wait for ``result``: ``(state, value)``, the value being the error text unless ``success``.

    Raises:
        yadtq.TimeoutError: not finished within ``timeout`` seconds.
    """
    value = result.get(timeout=timeout, propagate=False)
    record = result.info
    state = record.state if record is not None else states.QUEUED
    if state == states.SUCCESS:
        return state, value
    if record is not None and record.error is not None:
        return state, format_error(record.error.type, record.error.message)
    return state, format_error(type(value).__name__, str(value))


def print_outcome(result: AsyncResult[Any], timeout: Optional[float]) -> None:
    """Wait for ``result`` and print its value.

    Raises:
        TaskFailed: the task failed or was revoked.
        yadtq.TimeoutError: not finished within ``timeout`` seconds.
    """
    state, value = outcome(result, timeout)
    if state != states.SUCCESS:
        raise TaskFailed(value)
    click.echo(format_value(value))


# --------------------------------------------------------------------------- submit


@dataclass(frozen=True)
class Entry:
    """One task of a ``--file``, checked."""

    label: str
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    countdown: Optional[float] = None
    queue: Optional[str] = None
    key: Optional[str] = None


def read_entries(path: Path, app: YADTQ) -> list[Entry]:
    """Read and check a task file: a JSON list of ``{"task", "args", "kwargs", "countdown"}``.

    Raises:
        ConfigurationError: the file is missing or unreadable, not JSON, or an entry is wrong
            (the message names it as ``#N``, counting from 1, with its list index).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{path}: invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, list):
        raise ConfigurationError(f"{path}: expected a JSON list of tasks, got {_json_type(data)}")
    return [_entry(path, index, item, app) for index, item in enumerate(data)]


def _entry(path: Path, index: int, item: Any, app: YADTQ) -> Entry:
    where = f"{path}: task #{index + 1} (index {index})"
    if not isinstance(item, dict):
        raise ConfigurationError(f"{where}: expected an object like {{\"task\": \"add\", \"args\": [1, 2]}}, "
                                 f"got {_json_type(item)}")
    unknown = sorted(set(item) - set(ENTRY_FIELDS))
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)} "
                                 f"(allowed: {', '.join(ENTRY_FIELDS)})")
    name = item.get("task")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}: \"task\" must be a task name")
    args = item.get("args", [])
    if not isinstance(args, list):
        raise ConfigurationError(f"{where}: \"args\" must be a list, got {_json_type(args)}")
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConfigurationError(f"{where}: \"kwargs\" must be an object, got {_json_type(kwargs)}")
    countdown = item.get("countdown")
    if countdown is not None and (isinstance(countdown, bool) or not isinstance(countdown, (int, float))
                                  or countdown < 0):
        raise ConfigurationError(f"{where}: \"countdown\" must be a number of seconds >= 0")
    for option in ("queue", "key"):
        if item.get(option) is not None and not isinstance(item[option], str):
            raise ConfigurationError(f"{where}: \"{option}\" must be a string")
    try:
        full = resolve_name(app, name)
        if full in app.tasks:
            check_call(app.tasks[full], tuple(args), kwargs)
    except (NotRegistered, ValueError) as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return Entry(label=name, name=full, args=tuple(args), kwargs=kwargs,
                 countdown=float(countdown) if countdown is not None else None,
                 queue=item.get("queue"), key=item.get("key"))


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


class _SubmitCommand(click.Command):
    """Remembers how many words followed ``--``: those are arguments even if they look
    like options (``yadtq submit greet -- -x`` sends the string ``"-x"``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            ctx.meta[_LITERAL] = len(args) - args.index("--") - 1
        return super().parse_args(ctx, args)


_LITERAL = "yadtq.submit.literal"


@click.command("submit", cls=_SubmitCommand, context_settings={"ignore_unknown_options": True})
@app_option
@click.argument("task", required=False)
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--countdown", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Run no earlier than this many seconds from now.")
@click.option("--queue", help="Send to this queue instead of the task's own.")
@click.option("--key", help="Routing key: tasks with one key run in order on one partition.")
@click.option("--priority", type=click.IntRange(0, 9), metavar="0-9",
              help="Priority of TASK: higher runs first (default: the task's own, else 0).")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="Submit every task of a JSON file (see below) instead of TASK.")
@click.option("--wait", is_flag=True, help="Wait for the result(s) and print them.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Wait at most this long (implies --wait; exit 1 if not finished).")
@click.option("--json", "as_json", is_flag=True,
              help="With --file: print a JSON list of {id, task, ...} (with --wait: state, result or error).")
def submit(app_path: str, task: Optional[str], args: tuple[str, ...], kwargs_json: Optional[str],
           countdown: Optional[float], queue: Optional[str], key: Optional[str], file: Optional[Path],
           wait: bool, timeout: Optional[float], as_json: bool = False,
           priority: Optional[int] = None) -> None:
    """Send a task, or every task of a file; print the task id(s).

    TASK is a registered name, an unambiguous short name (add), or a full dotted
    name sent as is even if this app does not register it. Each ARG is read as JSON,
    else as a Python literal, else as a string: `add 2 3` sends two ints, `greet bob`
    the string "bob", `greet '"42"'` the string "42".

    \b
    With --file, the file is a JSON list of tasks:
      [{"task": "add", "args": [1, 2], "kwargs": {}, "countdown": 0}, ...]
    ("args", "kwargs", "countdown", "queue" and "key" are optional); --wait then
    prints a table of results.

    Exit status: 0 on success; 1 if a task failed, a wait timed out, or on any
    other error; 2 for wrong usage.
    """
    wait = wait or timeout is not None
    if file is not None:
        if task is not None:
            raise click.UsageError("give either TASK [ARGS...] or --file, not both")
        if kwargs_json is not None:
            raise click.UsageError("--kwargs applies to a single TASK, not to --file")
        if priority is not None:
            raise click.UsageError("--priority applies to a single TASK, not to --file")
        _submit_file(app_path, file, countdown=countdown, queue=queue, key=key, wait=wait, timeout=timeout,
                     as_json=as_json)
        return
    if task is None:
        raise click.UsageError("missing TASK (or --file)")
    if as_json:
        raise click.UsageError("--json applies to --file")
    values = [parse_arg(a) for a in args]
    literal = click.get_current_context().meta.get(_LITERAL, 0)  # after "--": never options
    for raw, value in zip(args[:max(0, len(args) - literal)], values):
        if isinstance(value, str) and raw.startswith("-"):
            raise click.UsageError(f"no such option: {raw} (to send it as a string, quote it as JSON: "
                                   f"'\"{raw}\"', or put it after --)")
    kwargs = _parse_kwargs(kwargs_json)
    check_serializable(args, values, kwargs)
    app = load_app(app_path)
    name = resolve_name(app, task)
    if name in app.tasks:
        check_call(app.tasks[name], tuple(values), kwargs)
    before_sending(app)
    result = app.send_task(name, values, kwargs, countdown=countdown, queue=queue, key=key,
                           priority=priority)
    flush(app)
    click.echo(result.id)
    warn_unconsumed(app, [_queue_of(app, name, queue)])
    if wait:
        print_outcome(result, timeout)


def _queue_of(app: YADTQ, name: str, queue: Optional[str]) -> str:
    """The queue a task sent without an explicit queue goes to."""
    task = app.tasks.get(name)
    return queue or (task.options.queue if task is not None and task.options.queue else None) \
        or app.settings.default_queue


def _parse_kwargs(text: Optional[str]) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint="'--kwargs'") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"expected a JSON object, got {_json_type(value)}", param_hint="'--kwargs'")
    return value


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=stderr_console())


def _submit_file(app_path: str, path: Path, *, countdown: Optional[float], queue: Optional[str],
                 key: Optional[str], wait: bool, timeout: Optional[float], as_json: bool) -> None:
    app = load_app(app_path)
    entries = read_entries(path, app)
    before_sending(app)
    results: list[AsyncResult[Any]] = []
    with _progress() as progress:
        bar = progress.add_task("submitting", total=len(entries))
        for entry in entries:
            results.append(app.send_task(
                entry.name, entry.args, entry.kwargs,
                countdown=entry.countdown if entry.countdown is not None else countdown,
                queue=entry.queue or queue, key=entry.key or key))
            progress.advance(bar)
        flush(app)
    warn_unconsumed(app, [_queue_of(app, e.name, e.queue or queue) for e in entries])
    if not wait:
        if as_json:
            click.echo(json.dumps([{"id": r.id, "task": e.name} for r, e in zip(results, entries)], indent=2))
        else:
            for result in results:
                click.echo(result.id)
        return
    try:
        rows = _wait_all(results, timeout)
    except KeyboardInterrupt:
        left = [r.id for r in results if r.state not in states.READY_STATES]
        click.echo(f"interrupted; {len(left)} of {len(results)} tasks not finished: {' '.join(left)}",
                   err=True)
        raise
    if as_json:
        click.echo(json.dumps([_result_dict(r, e, state, value) for r, e, (state, value)
                               in zip(results, entries, rows)], indent=2))
    else:
        _print_results(entries, rows, results)
        left = [r.id for r, (state, _) in zip(results, rows) if state not in states.READY_STATES]
        if left:
            click.echo(f"not finished: {' '.join(left)}", err=True)
    counts = Counter(state for state, _ in rows)
    problems = []
    if counts[states.FAILED] or counts[states.REVOKED]:
        problems.append(f"{counts[states.FAILED] + counts[states.REVOKED]} of {len(rows)} tasks failed")
    unfinished = len(rows) - sum(counts[s] for s in states.READY_STATES)
    if unfinished:
        problems.append(f"{unfinished} of {len(rows)} tasks not finished after {timeout:g} s")
    if problems:
        raise TaskFailed("; ".join(problems))


def _result_dict(result: AsyncResult[Any], entry: Entry, state: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": result.id, "task": entry.name, "args": list(entry.args),
                            "kwargs": entry.kwargs, "state": state}
    if state == states.SUCCESS:
        data["result"] = value if _json_safe(value) else repr(value)
    elif state in states.READY_STATES:
        data["error"] = str(value)
    return data


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _wait_all(results: Sequence[AsyncResult[Any]], timeout: Optional[float]) -> list[tuple[str, Any]]:
    """``(state, value-or-error)`` per result; those unfinished by the deadline keep their state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    rows: list[tuple[str, Any]] = []
    with _progress() as progress:
        bar = progress.add_task("waiting", total=len(results))
        for result in results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                rows.append(outcome(result, remaining))
            except ResultTimeout:
                rows.append((result.state, None))
            if rows[-1][0] in states.READY_STATES:
                progress.advance(bar)  # the bar counts finished tasks only
    return rows


def _print_results(entries: Sequence[Entry], rows: Sequence[tuple[str, Any]],
                   results: Sequence[AsyncResult[Any]]) -> None:
    console = stdout_console()
    table = Table(title="Results", title_justify="left")
    table.add_column("#", justify="right")
    # Full ids need room; a narrow table shows their start (--json has them whole).
    wide = console.width >= WIDE_TABLE
    table.add_column("id", no_wrap=True, overflow="fold" if wide else "ellipsis",
                     max_width=None if wide else SHORT_ID)
    table.add_column("task")
    table.add_column("args", overflow="fold")
    table.add_column("status")
    table.add_column("result", overflow="fold")
    for number, (entry, (state, value), handle) in enumerate(zip(entries, rows, results), start=1):
        if state == states.SUCCESS:
            shown = Text(format_value(value))
        elif state in states.READY_STATES:
            shown = Text(str(value), style="red")
        else:
            shown = Text("")
        table.add_row(str(number), Text(handle.id), Text(entry.label),
                      Text(format_call(entry.args, entry.kwargs)), styled(state, STATE_STYLES), shown)
    counts = Counter(state for state, _ in rows)
    order = [states.SUCCESS, states.FAILED, states.REVOKED]
    order += sorted(set(counts) - set(order))
    table.caption = f"{len(rows)} tasks: " + ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
    console.print(table)


# --------------------------------------------------------------------------- status, result


@click.command("status")
@app_option
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of {id, state, task, worker, retries}.")
def status(app_path: str, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Print the state of each task: one `ID state` line each.

    A task no worker has seen yet (or an unknown id) is `queued`.
    """
    app = load_app(app_path)
    found = []
    for task_id in task_ids:
        record = app.AsyncResult(task_id).info
        found.append({
            "id": task_id,
            "state": record.state if record is not None else states.QUEUED,
            "task": record.name if record is not None else None,
            "worker": record.worker if record is not None else None,
            "retries": record.retries if record is not None else 0,
        })
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for item in found:
        click.echo(f"{item['id']} {item['state']}")


@click.command("result")
@app_option
@click.argument("task_id", metavar="ID")
@click.option("--wait", is_flag=True, help="Wait until the task finishes.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Wait at most this long (implies --wait).")
def result(app_path: str, task_id: str, wait: bool, timeout: Optional[float]) -> None:
    """Print a task's result, JSON-encoded where possible (else its Python repr).

    \b
    Exit status:
      0  the task succeeded; its result is printed
      1  the task failed or was revoked (one `Error: Type: message` line),
         --wait timed out, or another error
      2  wrong usage
      3  the task has not finished and --wait was not given (`ID is STATE`)
    """
    app = load_app(app_path)
    handle = app.AsyncResult(task_id)
    if not (wait or timeout is not None):
        state = handle.state
        if state not in states.READY_STATES:
            click.echo(f"{task_id} is {state}", err=True)
            sys.exit(EXIT_NOT_READY)
        timeout = 0.0
    print_outcome(handle, timeout)


# --------------------------------------------------------------------------- purge


@click.command("purge")
@app_option
@queues_option("Queues to purge (default: the app's default queue).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(app_path: str, queues: tuple[str, ...], yes: bool) -> None:
    """Drop the tasks waiting in queues; print how many.

    Tasks already running, and those waiting for a countdown or eta, are not affected.
    Asks first unless --yes; without a terminal to ask on, --yes is required.
    """
    names = split_queues(queues)
    app = load_app(app_path)
    names = names or [app.settings.default_queue]
    if not yes:
        if not interactive():
            raise click.ClickException("refusing to purge without --yes (no terminal to confirm on)")
        ask(f"Drop every task waiting in {', '.join(names)}?")
    total = 0
    for name in names:
        count = app.purge(name)
        total += count
        if len(names) > 1:
            click.echo(f"{name}: {count}")
    click.echo(f"purged {total} task{'s' if total != 1 else ''}")
