"""``yadtq submit --file``: a JSON list of tasks, checked, sent, and with ``--wait``
their results waited for and shown as a table (or ``--json``)."""

from __future__ import annotations

import json
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
from ..exceptions import ConfigurationError, NotRegistered
from ..exceptions import TimeoutError as ResultTimeout
from .calls import check_call, json_type, queue_of, resolve_name
from .hints import before_sending, warn_unconsumed
from .loading import load_app
from .render import STATE_STYLES, format_call, format_value, stderr_console, stdout_console, styled
from .waiting import TaskFailed, flush, outcome

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..result import AsyncResult

#: Console width from which the results table shows whole task ids.
WIDE_TABLE = 120
#: Characters of a task id a narrower table shows.
SHORT_ID = 10
#: Fields a task entry of a ``--file`` may have.
ENTRY_FIELDS = ("task", "args", "kwargs", "countdown", "queue", "key")


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
        raise ConfigurationError(f"{path}: expected a JSON list of tasks, got {json_type(data)}")
    return [_entry(path, index, item, app) for index, item in enumerate(data)]


def _entry(path: Path, index: int, item: Any, app: YADTQ) -> Entry:
    where = f"{path}: task #{index + 1} (index {index})"
    if not isinstance(item, dict):
        raise ConfigurationError(f"{where}: expected an object like {{\"task\": \"add\", \"args\": [1, 2]}}, "
                                 f"got {json_type(item)}")
    unknown = sorted(set(item) - set(ENTRY_FIELDS))
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)} "
                                 f"(allowed: {', '.join(ENTRY_FIELDS)})")
    name = item.get("task")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}: \"task\" must be a task name")
    args = item.get("args", [])
    if not isinstance(args, list):
        raise ConfigurationError(f"{where}: \"args\" must be a list, got {json_type(args)}")
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConfigurationError(f"{where}: \"kwargs\" must be an object, got {json_type(kwargs)}")
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



def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=stderr_console())

def submit_file(app_path: str, path: Path, *, countdown: Optional[float], queue: Optional[str],
                key: Optional[str], wait: bool, timeout: Optional[float], as_json: bool) -> None:
    """Send every task of the file at ``path``; print their ids, or with ``wait`` their results.

    Raises:
        ConfigurationError: the file or one of its entries is wrong (nothing is sent).
        TaskFailed: with ``wait``, a task failed, was revoked or did not finish in time.
    """
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
    warn_unconsumed(app, [queue_of(app, e.name, e.queue or queue) for e in entries])
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

