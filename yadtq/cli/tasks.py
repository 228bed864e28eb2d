"""``yadtq status``, ``result`` and ``purge``: the client commands that read or drop
tasks. ``yadtq submit`` is ``submit.py``'s (the names below stay importable from here)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import click

from .. import states
from .calls import check_call, parse_arg, resolve_name
from .loading import load_app
from .options import app_option, ask, interactive, queues_option, split_queues
from .submit import submit
from .waiting import TaskFailed, flush, outcome, print_outcome

__all__ = ["EXIT_NOT_READY", "TaskFailed", "check_call", "flush", "outcome", "parse_arg", "print_outcome",
           "purge", "resolve_name", "result", "status", "submit"]

#: ``yadtq result``: the task has not finished (and --wait was not given).
EXIT_NOT_READY = 3


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
