"""``yadtq schedule list|add|pause|resume|remove|run``: the periodic schedules in the backend."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Optional

import click
from rich.table import Table

from .. import schedules
from ..periodic import CATCH_UP, CATCH_UP_ONCE, Schedule
from .calls import check_call, parse_arg, parse_kwargs, resolve_name
from .loading import load_app
from .options import app_option
from .render import format_call, stdout_console
from .waiting import flush

if TYPE_CHECKING:
    from ..schedules import ScheduleInfo


def format_time(moment: Optional[float], now: float) -> str:
    """``2026-12-01 05:40:00 UTC (in 12s)`` / ``never``."""
    if moment is None:
        return "never"
    when = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = moment - now
    return f"{when} ({'in ' if delta >= 0 else ''}{_span(abs(delta))}{' ago' if delta < 0 else ''})"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def schedule_table(infos: list[ScheduleInfo], now: float) -> Table:
    """The schedules as a table: name, task, spec, state, last and next run (also used by
    ``yadtq monitor`` and ``inspect``)."""
    table = Table(title="Periodic schedules", title_justify="left")
    for column in ("name", "task", "schedule", "state", "last run", "next run"):
        table.add_column(column)
    for info in infos:
        call = ""
        if info.schedule is not None and (info.schedule.args or info.schedule.kwargs):
            call = f"({format_call(info.schedule.args, info.schedule.kwargs)})"
        table.add_row(info.name, f"{info.task or '?'}{call}", info.describe(),
                      "[yellow]paused[/]" if info.paused else "[green]active[/]",
                      format_time(info.last_run, now),
                      "-" if info.paused else format_time(info.next_run, now))
    return table


@click.group("schedule")
def schedule() -> None:
    """Periodic schedules kept in the backend (see docs/periodic.md)."""


@schedule.command("list")
@app_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(app_path: str, as_json: bool) -> None:
    """List every schedule with its last and next run."""
    app = load_app(app_path)
    infos = app.periodic_tasks()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2, default=str))
        return
    if not infos:
        click.echo("no periodic schedules")
        return
    stdout_console().print(schedule_table(infos, app.now()))


@schedule.command("add", context_settings={"ignore_unknown_options": True})
@app_option
@click.argument("name")
@click.argument("task")
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--cron", metavar="EXPR", help="A cron expression, e.g. '*/5 * * * *'.")
@click.option("--every", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Fire every this many seconds.")
@click.option("--timezone", "tz", default="UTC", show_default=True, help="Timezone of --cron.")
@click.option("--catch-up", type=click.Choice(CATCH_UP), default=CATCH_UP_ONCE, show_default=True,
              help="Ticks missed while no worker ran: run once, or skip.")
@click.option("--queue", help="Send each tick to this queue instead of the task's own.")
def add_command(app_path: str, name: str, task: str, args: tuple[str, ...], kwargs_json: Optional[str],
                cron: Optional[str], every: Optional[float], tz: str, catch_up: str,
                queue: Optional[str]) -> None:
    """Store schedule NAME running TASK with ARGS on --cron or --every (replaces a
    schedule of that name whose spec differs)."""
    if (cron is None) == (every is None):
        raise click.UsageError("give exactly one of --cron or --every")
    values = tuple(parse_arg(a) for a in args)
    kwargs = parse_kwargs(kwargs_json)
    app = load_app(app_path)
    full = resolve_name(app, task)
    if full in app.tasks:
        check_call(app.tasks[full], values, kwargs)
    spec = Schedule(name, full, values, kwargs, cron, every, tz, catch_up, queue)
    changed = schedules.save(app, spec)
    info = schedules.find(app, name)
    click.echo(f"{name}: {'saved' if changed else 'unchanged'}; next run "
               f"{format_time(info.next_run, app.now())}")


@schedule.command("pause")
@app_option
@click.argument("name")
def pause_command(app_path: str, name: str) -> None:
    """Stop schedule NAME from firing until resumed."""
    schedules.pause(load_app(app_path), name)
    click.echo(f"{name}: paused")


@schedule.command("resume")
@app_option
@click.argument("name")
def resume_command(app_path: str, name: str) -> None:
    """Let schedule NAME fire again, from its next tick after now."""
    app = load_app(app_path)
    schedules.resume(app, name)
    click.echo(f"{name}: resumed; next run {format_time(schedules.find(app, name).next_run, app.now())}")


@schedule.command("remove")
@app_option
@click.argument("name")
def remove_command(app_path: str, name: str) -> None:
    """Delete schedule NAME (a worker whose app declares it saves it again at start)."""
    schedules.remove(load_app(app_path), name)
    click.echo(f"{name}: removed")


@schedule.command("run")
@app_option
@click.argument("name")
def run_command(app_path: str, name: str) -> None:
    """Send schedule NAME's task once now; print the task id."""
    app = load_app(app_path)
    result = schedules.run_now(app, name)
    flush(app)
    click.echo(result.id)
