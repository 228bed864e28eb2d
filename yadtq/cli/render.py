"""Terminal output shared by the commands: the worker table and small value formatters."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import states

#: Worker status -> rich style.
WORKER_STYLES = {"alive": "green", "unresponsive": "yellow", "offline": "dim"}
#: Task state -> rich style.
STATE_STYLES = {
    states.SUCCESS: "green",
    states.FAILED: "red",
    states.REVOKED: "magenta",
    states.PROCESSING: "cyan",
    states.RETRYING: "yellow",
    states.SCHEDULED: "blue",
    states.QUEUED: "yellow",
}


def stdout_console() -> Console:
    """A console on stdout (resolved at print time, so captured output works)."""
    return Console(highlight=False)


def stderr_console() -> Console:
    """A console on stderr, for banners and progress bars."""
    return Console(stderr=True, highlight=False)


def format_age(seconds: float) -> str:
    """``3.2`` -> ``"3s ago"``, ``125`` -> ``"2m 5s ago"``, ``7300`` -> ``"2h 1m ago"``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes}m"
    elif minutes:
        text = f"{minutes}m {secs}s"
    else:
        text = f"{secs}s"
    return f"{text} ago"


def format_value(value: Any) -> str:
    """A task result for printing: JSON where it can be encoded, else ``repr``."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def format_call(args: Sequence[Any], kwargs: Optional[Mapping[str, Any]] = None) -> str:
    """``(2, 3), {"z": 1}`` -> ``"2, 3, z=1"``."""
    parts = [format_value(a) for a in args]
    parts += [f"{k}={format_value(v)}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


def format_error(type_name: str, message: str) -> str:
    """``"builtins.ZeroDivisionError", "division by zero"`` -> ``"ZeroDivisionError: division by zero"``.

    Builtin and yadtq types lose their module; the message is folded onto one line.
    """
    for prefix in ("builtins.", "yadtq.exceptions."):
        if type_name.startswith(prefix):
            type_name = type_name[len(prefix):]
    message = one_line(message)
    return f"{type_name}: {message}" if message else type_name


def one_line(text: str) -> str:
    """Collapse whitespace runs (newlines included) to single spaces."""
    return " ".join(text.split())


def styled(text: str, style_map: Mapping[str, str]) -> Text:
    """``text`` as a rich Text in its style from ``style_map`` (plain if none)."""
    return Text(text, style=style_map.get(text, ""))


def print_worker_table(status: Mapping[str, Mapping[str, Any]], *, console: Optional[Console] = None,
                       now: Optional[float] = None) -> None:
    """Print workers as a table: worker, status, last heartbeat, done, failed, active.

    Args:
        status: what :meth:`yadtq.YADTQ.get_worker_status` returns.
        console: where to print (default: stdout).
        now: the time ages are measured from (default: now).
    """
    console = console or stdout_console()
    if not status:
        console.print(Text("no workers have reported yet", style="dim"))
        return
    now = time.time() if now is None else now
    table = Table(title="Workers", title_justify="left")
    table.add_column("worker", overflow="fold")
    table.add_column("status")
    table.add_column("last heartbeat", justify="right")
    table.add_column("done", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("active", justify="right")
    for worker, info in status.items():
        beat = info.get("last_heartbeat")
        table.add_row(
            Text(worker),
            styled(str(info.get("status", "?")), WORKER_STYLES),
            # The backend's measure of the silence; a bare timestamp is on its clock, not ours.
            format_age(float(info["silent"]) if "silent" in info else now - float(beat))
            if beat else "never",
            str(info.get("tasks_done", 0)),
            Text(str(info.get("tasks_failed", 0)), style="red" if info.get("tasks_failed") else ""),
            str(info.get("active", 0)),
        )
    console.print(table)
