"""What ``yadtq shell`` prints: task outcomes in short, the session's task list, one
task in full. Reading lines is ``shell_parsing.py``'s; the command loop is ``shell.py``'s."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Optional

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .. import states
from ..envelope import unpack
from ..exceptions import YADTQError
from .render import STATE_STYLES, format_call, format_error, format_value, one_line, styled

if TYPE_CHECKING:
    from ..transports.base import TaskRecord

#: Results and errors in the ``tasks`` list are cut to this many characters.
SHORT_WIDTH = 60


@dataclass(frozen=True)
class Submitted:
    """A task sent from this session."""

    id: str
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    #: When the shell sent it (the backend records no state before a worker takes it).
    sent: float = 0.0


def format_time(timestamp: Optional[float]) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS.mmm`` (``-`` for none)."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_duration(seconds: float) -> str:
    """``0.0042`` -> ``"4.2 ms"``, ``2.5`` -> ``"2.50 s"``, ``125`` -> ``"2m 5s"``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs}s"


def clip(text: str, width: int = SHORT_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def decoded_result(record: TaskRecord) -> str:
    """A successful task's result, formatted like ``yadtq result`` prints it."""
    if record.result is None:
        return format_value(None)
    try:
        return format_value(unpack(record.result))
    except YADTQError as exc:
        return f"<undecodable result: {one_line(str(exc))}>"


def outcome_text(record: Optional[TaskRecord], *, width: Optional[int] = SHORT_WIDTH) -> Text:
    """What a task came to, or where it is: result, error, worker or due time."""
    def cut(text: str) -> str:
        return clip(text, width) if width else text

    if record is None:
        return Text("")
    now = time.time()
    if record.state == states.SUCCESS:
        return Text(cut(decoded_result(record)))
    error = format_error(record.error.type, record.error.message) if record.error else ""
    if record.state == states.FAILED:
        return Text(cut(error or "failed"), style="red")
    if record.state == states.REVOKED:
        return Text(cut(record.error.message if record.error else "revoked"), style="magenta")
    if record.state == states.PROCESSING:
        return Text(f"on {record.worker}" if record.worker else "", style="dim")
    due = ""
    if record.eta:
        due = f"due in {format_duration(record.eta - now)}" if record.eta > now else "due now"
    if record.state == states.RETRYING:
        parts = [f"retry {record.retries}", due, error]
        return Text(cut(", ".join(part for part in parts if part)), style="yellow")
    return Text(due, style="dim")


def tasks_table(session: Sequence[Submitted], records: Sequence[Optional[TaskRecord]],
                label: Callable[[str], str]) -> Table:
    """The session's tasks, as ``tasks`` prints them: number, id, task (named by ``label``),
    arguments, live status, and the result or error in short."""
    table = Table(title="Tasks", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", no_wrap=True)
    table.add_column("task")
    table.add_column("args", overflow="fold")
    table.add_column("status")
    table.add_column("result", overflow="fold")
    for number, (item, record) in enumerate(zip(session, records), start=1):
        state = record.state if record is not None else states.QUEUED
        table.add_row(str(number), item.id, label(item.name),
                      Text(clip(format_call(item.args, item.kwargs))), styled(state, STATE_STYLES),
                      outcome_text(record))
    counts = Counter(record.state if record is not None else states.QUEUED for record in records)
    table.caption = f"{len(records)} tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return table


def task_detail(task_id: str, item: Optional[Submitted],
                record: Optional[TaskRecord]) -> list[RenderableType]:
    """One task in full, as ``view`` prints it: id, task, arguments (for a task of this
    session), status, result or error, retries, worker, queue, timings, state history and
    any traceback."""
    state = record.state if record is not None else states.QUEUED
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("id", task_id)
    name = record.name if record is not None and record.name else (item.name if item else "?")
    grid.add_row("task", name)
    if item is not None:
        grid.add_row("args", format_call(item.args, item.kwargs) or "(none)")
    grid.add_row("status", styled(state, STATE_STYLES))
    if record is not None and record.state == states.SUCCESS:
        grid.add_row("result", decoded_result(record))
    elif record is not None and record.error is not None:
        grid.add_row("error", Text(format_error(record.error.type, record.error.message), style="red"))
    elif record is not None and record.state not in states.READY_STATES:
        grid.add_row("", outcome_text(record, width=None))
    grid.add_row("retries", str(record.retries if record is not None else 0))
    grid.add_row("worker", (record.worker if record is not None else None) or "-")
    grid.add_row("queue", (record.queue if record is not None else None) or (item.queue if item else "-"))
    history = record.history if record is not None else ()
    sent = [ts for ts in (item.sent if item else None, history[0][1] if history else None) if ts]
    queued = min(sent) if sent else None
    started = next((ts for s, ts, _ in history if s == states.PROCESSING), None)
    last_start = record.timestamp(states.PROCESSING) if record is not None else None
    finished = record.timestamp(state) if record is not None and state in states.READY_STATES else None
    grid.add_row("queued", format_time(queued))
    grid.add_row("started", format_time(started))
    grid.add_row("finished", format_time(finished))
    if finished is not None and last_start is not None:
        grid.add_row("runtime", format_duration(max(0.0, finished - last_start)))
    if finished is not None and queued is not None:
        grid.add_row("total", format_duration(max(0.0, finished - queued)))
    if len(history) > 1:
        grid.add_row("history", "\n".join(
            f"{format_time(ts)}  {s:<10}  {w or ''}".rstrip() for s, ts, w in history))
    parts: list[RenderableType] = [grid]
    if record is not None and record.error is not None and record.error.traceback:
        parts += [Text("traceback", style="bold"), Text(record.error.traceback.rstrip(), style="dim")]
    return parts


#: Width of the shell's output when it goes to no terminal and ``COLUMNS`` is unset: wide
#: enough that no table row is wrapped (tables take only the width they need).
PIPED_WIDTH = 1000


def shell_console(*, stderr: bool) -> Console:
    """A console on stdout or stderr; when that is no terminal, lines are not wrapped at 80
    columns (unless ``COLUMNS`` asks for a width)."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, highlight=False, width=PIPED_WIDTH)
    return console
