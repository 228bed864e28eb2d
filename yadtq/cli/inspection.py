"""``yadtq inspect`` and ``yadtq tasks``: one part of the cluster at a time, for scripts."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any, Optional

import click
from rich.table import Table
from rich.text import Text

from .. import states
from ..monitor import monitored_queues, progress_of, queue_status, worker_dict, worker_statuses
from ..transports.base import TaskSummary
from ..transports.canvas_store import CanvasBackend
from .chords import chord_dict, chords_table
from .limits import concurrency_keys, print_limits
from .loading import load_app
from .options import app_option, queues_option, split_queues
from .render import stdout_console
from .schedule import schedule_table
from .stats import print_registered, print_stats
from .views import (
    failures_table,
    processing_table,
    retrying_table,
    scheduled_table,
    successes_table,
    workers_table,
)

if TYPE_CHECKING:
    from ..app import YADTQ

INSPECT_TARGETS = ("workers", "active", "scheduled", "failed", "chords", "schedules", "limits",
                   "registered", "stats")
TASK_STATES = (states.QUEUED, states.SCHEDULED, states.PROCESSING, states.RETRYING, states.SUCCESS,
               states.FAILED, states.REVOKED)
DEFAULT_LIMIT = 50


def limit_option(fn: Any) -> Any:
    return click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True,
                        help="Most tasks listed (recent successes and failures: at most 50).")(fn)


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _task_dicts(tasks: tuple[TaskSummary, ...]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(t) for t in tasks]


@click.command("inspect")
@click.argument("what", type=click.Choice(INSPECT_TARGETS), metavar="|".join(INSPECT_TARGETS))
@app_option
@limit_option
@json_option
def inspect_command(what: str, app_path: str, limit: int, as_json: bool) -> None:
    """Print the workers or a list of tasks.

    \b
      workers    every worker: status (alive, unresponsive, offline), health,
                 tasks done and failed, in flight, last heartbeat
      active     tasks in progress, longest running first (SQLite: with the
                 time their message's lease has left; a task whose worker
                 died shows processing until it runs out)
      scheduled  messages waiting for a countdown, eta or retry, soonest first
      failed     the latest failures, newest first
      schedules  periodic schedules with their last and next run
      chords     chords waiting for members, oldest first: members done of all
      limits     concurrency keys in use: slots taken, holders, tasks waiting;
                 and the scheduled tasks waiting on a rate limit
      registered the tasks each live worker registers, beside this app's own
      stats      per-worker counters and the cluster's totals

    With --json: a JSON list of objects (timestamps in epoch seconds); for
    registered and stats a JSON object.
    """
    app = load_app(app_path)
    now = time.time()
    console = stdout_console()
    if what in ("registered", "stats"):
        (print_registered if what == "registered" else print_stats)(app, now, as_json)
        return
    if what == "workers":
        workers = worker_statuses(app, now)
        if as_json:
            _dump([worker_dict(w, now) for w in workers])
        elif not workers:
            console.print(Text("no workers have reported yet", style="dim"))
        else:
            console.print(workers_table(workers, now))
        return
    if what == "schedules":
        infos = app.periodic_tasks()[:limit]
        if as_json:
            _dump([info.to_dict() for info in infos])
        elif not infos:
            console.print(Text("no periodic schedules", style="dim"))
        else:
            console.print(schedule_table(infos, app.now()))
        return
    if what == "chords":
        chords = app.backend.open_chords(limit) if isinstance(app.backend, CanvasBackend) else []
        if as_json:
            _dump([chord_dict(c, now) for c in chords])
        else:
            console.print(chords_table(chords, now))
        return
    if what == "limits":
        print_limits(app, limit, as_json)
        return
    snapshot = app.backend.snapshot(limit)
    if what == "active":
        progress = progress_of(app, snapshot.processing_tasks)
        # SQLite leases messages: a task whose worker died stays ``processing`` until then.
        leases = app.broker.leases() if snapshot.processing_tasks else {}
        if as_json:
            _dump([{**dataclasses.asdict(t), "lease_expires": leases.get(t.task_id)}
                   for t in snapshot.processing_tasks])
            return
        console.print(processing_table(snapshot.processing_tasks, now, total=snapshot.processing,
                                       progress=progress, leases=leases or None))
        return
    if what == "scheduled":
        tasks, table = snapshot.scheduled_tasks, scheduled_table(
            snapshot.scheduled_tasks, now, total=snapshot.scheduled)
    else:
        tasks, table = snapshot.recent_failures, failures_table(snapshot.recent_failures, now)
    if as_json:
        _dump(_task_dicts(tasks))
    else:
        console.print(table)
        if what == "scheduled":
            waiting = sum(k.waiting_count for k in concurrency_keys(app, 0))
            if waiting:
                console.print(Text(f"and {waiting} waiting for a concurrency slot: "
                                   "yadtq inspect limits", style="dim"))


@click.command("tasks")
@app_option
@click.option("--state", "state", type=click.Choice(TASK_STATES), required=True,
              help="Which tasks to list.")
@queues_option("For --state queued: queues to count (default: those the workers consume, then "
               "every other queue holding tasks).")
@limit_option
@json_option
def tasks_command(app_path: str, state: str, queues: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List the tasks in one state, from the backend's indexes (never a scan).

    \b
      queued      only a count: the broker keeps messages, not a list of tasks
      scheduled   waiting for a countdown, eta or retry, soonest first
      processing  in progress, longest running first
      retrying    waiting for their next attempt
      success     the latest successes (and the total)
      failed      the latest failures (and the total)
      revoked     only the total

    With --json: {"state", "count" (tasks in that state now) or "total" (ever, for
    success, failed and revoked), "tasks" (a list, or null)}; for queued also "queues"
    and "by_priority" (per queue: waiting tasks per priority level, Kafka: per lane).
    """
    names = split_queues(queues)
    app = load_app(app_path)
    now = time.time()
    if state == states.QUEUED:
        _print_queued(app, names, now, as_json)
        return
    snapshot = app.backend.snapshot(limit)
    totals = snapshot.totals
    count: Optional[int] = None
    total: Optional[int] = None
    tasks: tuple[TaskSummary, ...] = ()
    table: Optional[Table] = None
    if state == states.PROCESSING:
        count, tasks = snapshot.processing, snapshot.processing_tasks
        table = processing_table(tasks, now, total=count, progress=progress_of(app, tasks))
    elif state == states.RETRYING:
        count, tasks = snapshot.retrying, snapshot.retrying_tasks
        table = retrying_table(tasks, now, total=count)
    elif state == states.SCHEDULED:
        count, tasks = snapshot.scheduled, snapshot.scheduled_tasks
        table = scheduled_table(tasks, now, total=count)
    elif state == states.SUCCESS:
        total, tasks = totals.succeeded, snapshot.recent_successes
        table = successes_table(tasks, now)
    elif state == states.FAILED:
        total, tasks = totals.failed, snapshot.recent_failures
        table = failures_table(tasks, now)
    else:
        total = totals.revoked
    if as_json:
        payload: dict[str, Any] = {"state": state}
        payload.update({"count": count} if total is None else {"total": total})
        payload["tasks"] = None if table is None else _task_dicts(tasks)
        _dump(payload)
        return
    if table is not None:
        stdout_console().print(table)
    if total is not None:
        click.echo(f"{total} {state} in total")


def _print_queued(app: YADTQ, names: list[str], now: float, as_json: bool) -> None:
    queue_names = monitored_queues(app, worker_statuses(app, now), names)
    statuses = [queue_status(app, q) for q in queue_names]
    depths = {q.name: q.depth for q in statuses}
    known = [d for d in depths.values() if d is not None]
    count = sum(known) if known else None
    if as_json:
        _dump({"state": states.QUEUED, "count": count, "queues": depths, "tasks": None,
               "by_priority": {q.name: q.by_priority for q in statuses}})
        return
    per_queue = ", ".join(f"{q.name}: {'?' if q.depth is None else q.depth}"
                          + (f" [priority {q.priorities_text()}]" if q.priorities_text() else "")
                          for q in statuses)
    click.echo(f"{'?' if count is None else count} queued ({per_queue})")
    click.echo("the broker keeps queued messages, not a list of tasks: only counts are known", err=True)
