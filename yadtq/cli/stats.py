"""``yadtq inspect registered`` and ``yadtq inspect stats``."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from ..monitor import worker_statuses
from .render import WORKER_STYLES, format_age, stdout_console, styled

if TYPE_CHECKING:
    from ..app import YADTQ


def registered(app: YADTQ, now: float) -> dict[str, Any]:
    """This app's task names and, per worker not offline, the names it reported."""
    workers = {w.name: sorted(w.info.extra.get("registered") or []) if "registered" in w.info.extra else None
               for w in worker_statuses(app, now) if w.status != "offline"}
    return {"app": sorted(app.tasks), "workers": workers}


def print_registered(app: YADTQ, now: float, as_json: bool) -> None:
    data = registered(app, now)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    workers: dict[str, Any] = data["workers"]
    names = sorted(set(data["app"]).union(*(set(v or ()) for v in workers.values())))
    table = Table(title="Registered tasks", title_justify="left")
    table.add_column("task", overflow="fold")
    table.add_column("in this app", justify="center")
    table.add_column("workers", overflow="fold")
    for name in names:
        serving = [w for w, tasks in workers.items() if tasks and name in tasks]
        table.add_row(Text(name), "yes" if name in data["app"] else Text("no", style="yellow"),
                      Text(", ".join(serving)) if serving else Text("none", style="red"))
    silent = [w for w, tasks in workers.items() if tasks is None]
    if silent:
        table.caption = f"not reporting their tasks (older yadtq): {', '.join(silent)}"
    stdout_console().print(table)


def stats(app: YADTQ, now: float) -> dict[str, Any]:
    """Per-worker counters and the backend's totals and current counts."""
    snapshot = app.backend.snapshot(0)
    return {
        "totals": dataclasses.asdict(snapshot.totals),
        "counts": {"processing": snapshot.processing, "scheduled": snapshot.scheduled,
                   "retrying": snapshot.retrying},
        "workers": [{
            "worker": w.name, "status": w.status, "pool": w.info.pool, "concurrency": w.info.concurrency,
            "active": w.info.active, "tasks_done": w.info.tasks_done, "tasks_failed": w.info.tasks_failed,
            "tasks_retried": w.info.extra.get("retried", 0), "uptime": max(0.0, now - w.info.started)
            if w.info.started else None, "hostname": w.info.hostname, "pid": w.info.pid,
            "last_heartbeat": w.info.last_heartbeat,
        } for w in worker_statuses(app, now)],
    }


def print_stats(app: YADTQ, now: float, as_json: bool) -> None:
    data = stats(app, now)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = stdout_console()
    table = Table(title="Workers", title_justify="left")
    for column in ("worker", "status", "pool", "active", "done", "failed", "retried", "up"):
        table.add_column(column, justify="left" if column in ("worker", "status", "pool") else "right",
                         overflow="fold")
    for w in data["workers"]:
        up = w["uptime"]
        table.add_row(Text(w["worker"]), styled(w["status"], WORKER_STYLES),
                      f"{w['pool']} x{w['concurrency']}", str(w["active"]), str(w["tasks_done"]),
                      str(w["tasks_failed"]), str(w["tasks_retried"]),
                      format_age(up).removesuffix(" ago") if up is not None else "?")
    if data["workers"]:
        console.print(table)
    else:
        console.print(Text("no workers have reported yet", style="dim"))
    totals, counts = data["totals"], data["counts"]
    click.echo("totals: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()))
    click.echo("now: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
