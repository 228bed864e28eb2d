"""``yadtq monitor``: a live view of the cluster (or one snapshot, as text or JSON)."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Optional

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..app import YADTQ
from ..exceptions import YADTQError
from ..monitor import ClusterSnapshot, take_snapshot
from ..namespace import DEFAULT_NAMESPACE
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


def counts_line(snapshot: ClusterSnapshot) -> Text:
    """The counts of :func:`counts_table` as running text, for a small terminal."""
    tasks, totals = snapshot.tasks, snapshot.tasks.totals
    queued, oldest, rate = snapshot.queued, snapshot.oldest_queued_age, snapshot.throughput
    parts = [
        f"queued {'?' if queued is None else queued}"
        + ("" if oldest is None else f" (oldest {format_duration(oldest)})"),
        f"processing {tasks.processing}", f"scheduled {tasks.scheduled}", f"retrying {tasks.retrying}",
        f"dead-lettered {totals.dead_lettered}", f"succeeded {totals.succeeded}",
        f"failed {totals.failed}", f"retried {totals.retried}", f"revoked {totals.revoked}",
        f"{'-' if rate is None else f'{rate:,.1f}'} tasks/s",
    ]
    return Text("  ".join(parts))


def queues_line(snapshot: ClusterSnapshot) -> Text:
    """The queues and their depths on one line, for a small terminal."""
    shown = [f"{q.name} {'?' if q.depth is None else q.depth}" for q in snapshot.queues]
    return Text.assemble(("Queues ", "bold"), ", ".join(shown) or "-")


#: What a view may leave out to fit a small terminal, least useful first. The
#: workers and the worker failures are never left out.
OPTIONAL_SECTIONS = ("extras", "successes", "failures", "processing", "counts")
#: The sections each of those names.
_DROPPED = {"extras": ("chords", "limits", "schedules"), "successes": ("successes",),
            "failures": ("failures",), "processing": ("processing",), "counts": ("counts",)}


def _sections(snapshot: ClusterSnapshot, rows: int, error: Optional[str]) -> list[tuple[str, RenderableType]]:
    """Every section of the view, named, in order (``counts_line`` is the small form of ``counts``)."""
    now = snapshot.taken
    tasks = snapshot.tasks
    header = Text.assemble(
        ("yadtq monitor", "bold cyan"), f"  {snapshot.app}  ",
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
        (f"\nbroker {snapshot.broker}  backend {snapshot.backend}", "dim"),
        ("" if snapshot.namespace == DEFAULT_NAMESPACE else f"  namespace {snapshot.namespace}", "dim"),
    )
    sections: list[tuple[str, RenderableType]] = [("header", header)]
    if error:
        sections.append(("error", Text(f"refresh failed, showing the last snapshot: {error}",
                                       style="bold red")))
    top = Table.grid(padding=(0, 4))
    top.add_row(counts_table(snapshot), queues_table(snapshot.queues, now))
    sections += [
        ("counts", top),
        ("counts_line", Group(counts_line(snapshot), queues_line(snapshot))),
        ("processing", processing_table(tasks.processing_tasks[:rows], now, total=tasks.processing,
                                        progress=snapshot.progress)),
        ("successes", successes_table(tasks.recent_successes[:rows], now)),
        ("failures", failures_table(tasks.recent_failures[:rows], now)),
    ]
    if snapshot.chords:
        sections.append(("chords", chords_table(snapshot.chords[:rows], now)))
    if snapshot.limits:
        sections.append(("limits", concurrency_table(snapshot.limits[:rows], snapshot.worker_names(), now)))
    sections.append(("workers", workers_table(snapshot.workers, now)))
    if snapshot.failures:
        sections.append(("worker_failures", worker_failures_table(snapshot.failures[:rows], now)))
    else:
        sections.append(("worker_failures", Text("no worker failures", style="dim")))
    if snapshot.schedules:
        sections.append(("schedules", schedule_table(list(snapshot.schedules[:rows]), now)))
    return sections


def _shown(sections: list[tuple[str, RenderableType]], leave_out: Sequence[str]) -> list[str]:
    dropped = {name for group in leave_out for name in _DROPPED.get(group, (group,))}
    small = "counts" in dropped
    return [name for name, _ in sections
            if name not in dropped and (name != "counts_line" or small)]


def render(snapshot: ClusterSnapshot, *, rows: int = 10, error: Optional[str] = None,
           leave_out: Sequence[str] = ()) -> RenderableType:
    """The whole view of one snapshot; ``rows`` caps every task list. ``leave_out`` names
    sections of :data:`OPTIONAL_SECTIONS` to drop (``counts``: the counts and queues as
    two lines of text instead of tables)."""
    sections = _sections(snapshot, rows, error)
    shown = set(_shown(sections, leave_out))
    return Group(*(part for name, part in sections if name in shown))


def fitted(snapshot: ClusterSnapshot, console: Console, *, error: Optional[str] = None) -> RenderableType:
    """The fullest view that fits the console: task lists shortened first (to one row),
    then the sections of :data:`OPTIONAL_SECTIONS` left out one by one, so the workers
    and the worker failures stay on screen even at 80x24. Measures each section once
    per row count tried (a view's height is the sum of its sections')."""
    height = console.height
    options = console.options.update(height=None)

    def heights(rows: int) -> tuple[list[tuple[str, RenderableType]], dict[str, int]]:
        sections = _sections(snapshot, rows, error)
        return sections, {name: len(console.render_lines(part, options, pad=False))
                          for name, part in sections}

    def view(sections: list[tuple[str, RenderableType]], leave_out: Sequence[str]) -> RenderableType:
        shown = set(_shown(sections, leave_out))
        return Group(*(part for name, part in sections if name in shown))

    rows = fitting_rows(snapshot, height)
    while True:
        sections, measured = heights(rows)
        if sum(measured[name] for name in _shown(sections, ())) <= height or rows == 1:
            break
        rows = max(1, rows - max(1, rows // 3))
    for count in range(len(OPTIONAL_SECTIONS) + 1):
        leave_out = OPTIONAL_SECTIONS[:count]
        if sum(measured[name] for name in _shown(sections, leave_out)) <= height:
            return view(sections, leave_out)
    return view(sections, OPTIONAL_SECTIONS)


def measured_snapshot(app: YADTQ, queues: list[str], interval: float) -> ClusterSnapshot:
    """One snapshot whose throughput is measured over ``interval`` seconds (none if 0)."""
    if interval <= 0:
        return take_snapshot(app, queues, limit=SNAPSHOT_LIMIT)
    first = take_snapshot(app, queues, limit=0)
    time.sleep(interval)
    return take_snapshot(app, queues, limit=SNAPSHOT_LIMIT, previous=first)


def fitting_rows(snapshot: ClusterSnapshot, height: int) -> int:
    """About how many rows each task list may have for the view to fit ``height`` lines
    (where :func:`fitted` starts trying)."""
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
        if rows is not None:
            return render(snapshot, rows=rows, error=error)
        return fitted(snapshot, console, error=error)

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
@queues_option("Queues to show (default: those the workers consume, else the default queue, then "
               "every other queue holding tasks).")
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
