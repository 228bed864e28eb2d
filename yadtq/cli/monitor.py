"""``yadtq monitor``: a live view of the cluster (or one snapshot, as text or JSON)."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Optional

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..app import YADTQ
from ..exceptions import YADTQError
from ..monitor import ClusterSnapshot, take_snapshot
from .chords import chords_table
from .limits import concurrency_table
from .loading import load_app
from .options import app_option, queues_option, split_queues
from .render import one_line, stdout_console
from .schedule import schedule_table
from .views import (
    failures_table,
    format_duration,
    processing_table,
    queues_table,
    successes_table,
    worker_failures_table,
    workers_table,
)

logger = logging.getLogger(__name__)

#: Tasks read from the backend for each list (the view shows ``--rows`` of them).
SNAPSHOT_LIMIT = 50
#: Seconds over which the live view measures throughput.
THROUGHPUT_WINDOW = 5.0
#: Rows of each task list printed by ``--once`` unless ``--rows`` says otherwise.
ONCE_ROWS = 10


def counts_table(snapshot: ClusterSnapshot) -> Table:
    """Current counts, cumulative totals and throughput, as a two-column grid."""
    tasks, totals = snapshot.tasks, snapshot.tasks.totals
    grid = Table.grid(padding=(0, 2))
    grid.title, grid.title_justify, grid.title_style = "Tasks", "left", "bold"
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    grid.add_column(style="dim")
    queued = snapshot.queued
    oldest = snapshot.oldest_queued_age
    grid.add_row("queued", "?" if queued is None else str(queued),
                 "broker depth" if oldest is None else f"oldest {format_duration(oldest)}")
    grid.add_row("processing", Text(str(tasks.processing), style="cyan"), "")
    grid.add_row("scheduled", str(tasks.scheduled), "countdown, eta and retries")
    grid.add_row("retrying", Text(str(tasks.retrying), style="yellow" if tasks.retrying else ""), "")
    dead = totals.dead_lettered
    grid.add_row("dead-lettered", Text(str(dead), style="red" if dead else ""), "in total")
    grid.add_row("succeeded", Text(str(totals.succeeded), style="green"), "in total")
    grid.add_row("failed", Text(str(totals.failed), style="red" if totals.failed else ""), "in total")
    grid.add_row("retried", str(totals.retried), "attempts, in total")
    grid.add_row("revoked", str(totals.revoked), "in total")
    rate = snapshot.throughput
    grid.add_row("throughput", "-" if rate is None else f"{rate:,.1f}", "tasks/s finished")
    return grid


def render(snapshot: ClusterSnapshot, *, rows: int = 10, error: Optional[str] = None) -> RenderableType:
    """The whole view of one snapshot; ``rows`` caps every task list."""
    now = snapshot.taken
    header = Text.assemble(
        ("yadtq monitor", "bold cyan"), f"  {snapshot.app}  ",
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
        (f"\nbroker {snapshot.broker}  backend {snapshot.backend}", "dim"),
    )
    top = Table.grid(padding=(0, 4))
    top.add_row(counts_table(snapshot), queues_table(snapshot.queues, now))
    tasks = snapshot.tasks
    parts: list[RenderableType] = [header]
    if error:
        parts.append(Text(f"refresh failed, showing the last snapshot: {error}", style="bold red"))
    parts += [
        top,
        processing_table(tasks.processing_tasks[:rows], now, total=tasks.processing,
                         progress=snapshot.progress),
        successes_table(tasks.recent_successes[:rows], now),
        failures_table(tasks.recent_failures[:rows], now),
        workers_table(snapshot.workers, now),
    ]
    if snapshot.chords:
        parts.insert(-1, chords_table(snapshot.chords[:rows], now))
    if snapshot.limits:
        parts.insert(-1, concurrency_table(snapshot.limits[:rows], snapshot.worker_names(), now))
    if snapshot.failures:
        parts.append(worker_failures_table(snapshot.failures[:rows], now))
    else:
        parts.append(Text("no worker failures", style="dim"))
    if snapshot.schedules:
        parts.append(schedule_table(list(snapshot.schedules[:rows]), now))
    return Group(*parts)


def measured_snapshot(app: YADTQ, queues: list[str], interval: float) -> ClusterSnapshot:
    """One snapshot whose throughput is measured over ``interval`` seconds (none if 0)."""
    if interval <= 0:
        return take_snapshot(app, queues, limit=SNAPSHOT_LIMIT)
    first = take_snapshot(app, queues, limit=0)
    time.sleep(interval)
    return take_snapshot(app, queues, limit=SNAPSHOT_LIMIT, previous=first)


def fitting_rows(snapshot: ClusterSnapshot, height: int) -> int:
    """How many rows each task list may have for the view to fit ``height`` lines."""
    fixed = 13 + 3 * 5 + (5 + len(snapshot.workers)) + (6 if snapshot.failures else 1)
    fixed += (5 + 2 * len(snapshot.schedules)) if snapshot.schedules else 0
    return max(2, (height - fixed) // 3)


def watch(app: YADTQ, queues: list[str], interval: float, rows: Optional[int]) -> None:
    """Refresh the view every ``interval`` seconds until Ctrl-C; a failed refresh keeps the
    last snapshot on screen with the error above it. Throughput is measured over the
    last ``THROUGHPUT_WINDOW`` seconds."""
    console = stdout_console()
    snapshot = take_snapshot(app, queues, limit=SNAPSHOT_LIMIT)
    window: deque[ClusterSnapshot] = deque([snapshot])

    def view(error: Optional[str] = None) -> RenderableType:
        shown = rows if rows is not None else fitting_rows(snapshot, console.height)
        return render(snapshot, rows=shown, error=error)

    with Live(view(), console=console, auto_refresh=False, screen=console.is_terminal,
              redirect_stderr=False) as live:
        while True:
            time.sleep(interval)
            try:
                snapshot = take_snapshot(app, queues, limit=SNAPSHOT_LIMIT, previous=window[0])
            except YADTQError as exc:
                logger.debug("monitor refresh failed: %s", exc)
                live.update(view(one_line(str(exc))), refresh=True)
                continue
            window.append(snapshot)
            while snapshot.taken - window[0].taken > THROUGHPUT_WINDOW:
                window.popleft()
            live.update(view(), refresh=True)


@click.command("monitor")
@app_option
@queues_option("Queues to show (default: those the workers consume, else the default queue).")
@click.option("--interval", type=click.FloatRange(min=0.1, max=60.0), default=1.0, show_default=True,
              metavar="SECONDS", help="Seconds between refreshes (and over which --once/--json "
              "measure throughput).")
@click.option("--rows", type=click.IntRange(min=1),
              help=f"Most tasks shown in each list (default: what fits the terminal; {ONCE_ROWS} "
              "with --once).")
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as a JSON object and exit.")
def monitor(app_path: str, queues: tuple[str, ...], interval: float, rows: Optional[int], once: bool,
            as_json: bool) -> None:
    """Watch the cluster live: queues, task counts, tasks in progress, recent successes
    and failures, workers (with health) and worker failures. Ctrl-C quits.

    Everything comes from counters and indexes the backend keeps, so a refresh costs
    the same however many results are stored, and a restarted monitor loses nothing.
    Throughput (tasks finished per second) is measured over the last 5 seconds;
    --once and --json measure it over one --interval before printing.
    """
    names = split_queues(queues)
    app = load_app(app_path)
    if once or as_json:
        snapshot = measured_snapshot(app, names, interval)
        if as_json:
            click.echo(json.dumps(snapshot.to_dict(), indent=2))
        else:
            stdout_console().print(render(snapshot, rows=rows or ONCE_ROWS))
        return
    try:
        watch(app, names, interval, rows)
    except KeyboardInterrupt:
        return
