"""Rich tables of cluster data, shared by ``yadtq monitor``, ``inspect`` and ``tasks``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from rich.table import Table
from rich.text import Text

from ..monitor import QueueStatus, WorkerStatus, progress_text
from ..transports.base import Progress, TaskSummary, WorkerFailure
from .render import WORKER_STYLES, format_age, format_error, styled

#: Narrowest an id column gets on a narrow terminal.
ID_MIN_WIDTH = 10
TASK_MIN_WIDTH = 12
#: How a worker's ``healthy`` flag shows.
HEALTH_STYLES = {"ok": "green", "stalled": "bold red", "?": "yellow", "-": "dim"}


def format_duration(seconds: float) -> str:
    """``0.0042`` -> ``"4ms"``, ``3.25`` -> ``"3.2s"``, ``125`` -> ``"2m 5s"``, ``7300`` -> ``"2h 1m"``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_age(seconds)[: -len(" ago")]


def health(worker: WorkerStatus) -> str:
    """``ok``, ``stalled`` (alive, but its consume loop stopped turning), ``?`` (unresponsive:
    its last word is stale) or ``-`` (offline)."""
    if worker.status == "offline":
        return "-"
    if worker.status != "alive":
        return "?"
    return "ok" if worker.healthy else "stalled"


def _table(title: str, *columns: str, right: Sequence[str] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=False)
    for column in columns:
        if column in ("id", "instance"):
            # Shrinks first on a narrow terminal (to its first characters and "…"), rather
            # than squeezing every other column to a few characters; --json has ids whole.
            table.add_column(column, overflow="ellipsis", min_width=ID_MIN_WIDTH)
        elif column == "task":
            table.add_column(column, overflow="ellipsis", min_width=TASK_MIN_WIDTH)
        else:
            table.add_column(column, justify="right" if column in right else "left",
                             overflow="fold")
    return table


def _name(summary: TaskSummary) -> Text:
    return Text(summary.name or "?", style="" if summary.name else "dim")


def _worker(name: Optional[str]) -> Text:
    return Text(name or "-", style="" if name else "dim")


def queues_table(queues: Sequence[QueueStatus], now: float) -> Table:
    """Queue, depth (Kafka: lag), age of the oldest waiting task, and the depth per
    priority (a column shown while any queue holds tasks above the default level)."""
    levels = [queue.priorities_text() for queue in queues]
    columns = ["queue", "depth", "oldest waiting"] + (["by priority"] if any(levels) else [])
    table = _table("Queues", *columns, right=("depth", "oldest waiting"))
    for queue, text in zip(queues, levels):
        oldest = "-" if queue.oldest_created is None else format_duration(now - queue.oldest_created)
        cells: list[Any] = [Text(queue.name), "?" if queue.depth is None else str(queue.depth), oldest]
        table.add_row(*cells, *([text or "-"] if any(levels) else []))
    return table


def processing_table(tasks: Sequence[TaskSummary], now: float, *, title: str = "In progress",
                     total: Optional[int] = None,
                     progress: Optional[Mapping[str, Progress]] = None,
                     leases: Optional[Mapping[str, float]] = None) -> Table:
    """Tasks in progress, longest running first: id, task, worker, running time, the
    progress they reported (a column shown when any did) and, on a broker that leases
    messages (SQLite), how long the lease has left (``leases``: task id -> lease end)."""
    shown = progress or {}
    columns = (["id", "task", "worker", "running"] + (["progress"] if shown else [])
               + (["lease left"] if leases is not None else []))
    table = _table(_titled(title, len(tasks), total), *columns, right=("running", "lease left"))
    for task in tasks:
        cells: list[Any] = [task.task_id, _name(task), _worker(task.worker),
                            format_duration(now - task.timestamp)]
        if shown:
            cells.append(Text(progress_text(shown.get(task.task_id))))
        if leases is not None:
            until = leases.get(task.task_id)
            cells.append("-" if until is None else format_duration(until - now))
        table.add_row(*cells)
    return table


def retrying_table(tasks: Sequence[TaskSummary], now: float, *, total: Optional[int] = None) -> Table:
    """Tasks waiting for their next attempt: id, task, worker of the failed attempt, since."""
    table = _table(_titled("Retrying", len(tasks), total), "id", "task", "last worker", "since",
                   right=("since",))
    for task in tasks:
        table.add_row(task.task_id, _name(task), _worker(task.worker), format_age(now - task.timestamp))
    return table


def scheduled_table(tasks: Sequence[TaskSummary], now: float, *, total: Optional[int] = None) -> Table:
    """Scheduled messages, soonest first: id, task, queue, when due, and why when a limit
    holds it (``waiting``)."""
    table = _table(_titled("Scheduled", len(tasks), total), "id", "task", "queue", "due", "waiting",
                   right=("due",))
    for task in tasks:
        wait = task.timestamp - now
        due = f"in {format_duration(wait)}" if wait > 0 else "now"
        table.add_row(task.task_id, _name(task), Text(task.queue or "-"), due, Text(task.reason or "-"))
    return table


def successes_table(tasks: Sequence[TaskSummary], now: float, *, total: Optional[int] = None) -> Table:
    """Latest successes, newest first: id, task, worker, when, runtime."""
    table = _table(_titled("Recent successes", len(tasks), total), "id", "task", "worker", "finished",
                   "runtime", right=("finished", "runtime"))
    for task in tasks:
        table.add_row(task.task_id, _name(task), _worker(task.worker), format_age(now - task.timestamp),
                      "-" if task.runtime is None else format_duration(task.runtime))
    return table


def failures_table(tasks: Sequence[TaskSummary], now: float, *, total: Optional[int] = None) -> Table:
    """Latest failures, newest first: id, task, worker, when, error."""
    table = _table(_titled("Recent failures", len(tasks), total), "id", "task", "worker", "finished",
                   "error", right=("finished",))
    for task in tasks:
        error = format_error(task.error_type or "?", task.error_message or "")
        table.add_row(task.task_id, _name(task), _worker(task.worker), format_age(now - task.timestamp),
                      Text(error, style="red"))
    return table


def workers_table(workers: Sequence[WorkerStatus], now: float) -> Table:
    """Workers: id, status, health, done, failed, in flight, last heartbeat, queues."""
    table = _table("Workers", "worker", "status", "health", "done", "failed", "in flight",
                   "last heartbeat", "queues", right=("done", "failed", "in flight", "last heartbeat"))
    for worker in workers:
        info = worker.info
        table.add_row(
            Text(info.worker), styled(worker.status, WORKER_STYLES), styled(health(worker), HEALTH_STYLES),
            str(info.tasks_done),
            Text(str(info.tasks_failed), style="red" if info.tasks_failed else ""),
            f"{info.active}/{info.concurrency}" if info.concurrency else str(info.active),
            format_age(info.silent) if info.last_heartbeat else "never",
            Text(", ".join(info.queues)),
        )
    return table


def worker_failures_table(failures: Sequence[WorkerFailure], now: float) -> Table:
    """Worker failure history, newest first: worker, instance, last heartbeat, noticed."""
    table = _table("Worker failures", "worker", "instance", "last heartbeat", "noticed",
                   right=("last heartbeat", "noticed"))
    for failure in failures:
        table.add_row(Text(failure.worker), Text(failure.instance),
                      format_age(now - failure.last_heartbeat), format_age(now - failure.detected))
    return table


def _titled(title: str, shown: int, total: Optional[int]) -> str:
    if total is None or total == shown:
        return f"{title} ({shown})"
    return f"{title} ({shown} of {total})"
