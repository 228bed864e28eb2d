"""``yadtq dlq``: the dead-letter queue, where messages that can never run are kept."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .. import operations
from ..envelope import decode
from ..exceptions import ProtocolError
from ..transports.base import DeadLetter
from .loading import load_app
from .options import app_option, confirm_many, yes_option
from .render import format_age, format_call, one_line, stdout_console

DEFAULT_LIMIT = 100


def letter_dict(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON-ready data (its arguments when the body is readable)."""
    data: dict[str, Any] = {
        "id": letter.id, "queue": letter.queue, "task": letter.task, "task_id": letter.task_id,
        "reason": letter.reason, "timestamp": letter.timestamp, "size": len(letter.body),
    }
    try:
        envelope = decode(letter.body)
    except ProtocolError as exc:
        data["decode_error"] = str(exc)
    else:
        data.update(task=envelope.task, task_id=envelope.id, retries=envelope.retries,
                    call=format_call(envelope.args, envelope.kwargs))
    return data


@click.group("dlq")
def dlq() -> None:
    """The dead-letter queue: messages no worker can run (unknown task, unreadable, bad
    signature), each kept with the reason it was set aside.

    \b
      list             the newest dead letters, with their reasons
      show ID          one of them in full (ID: its own id or its task's id)
      requeue ID...    send them back to their queues (--all: every one)
      purge            drop every dead letter
    """


@dlq.command("list")
@app_option
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True,
              help="Most dead letters listed (the newest).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def dlq_list(app_path: str, limit: int, as_json: bool) -> None:
    """List the newest dead letters, oldest first, each with its reason."""
    app = load_app(app_path)
    letters = app.broker.list_dead_letters(limit)
    if as_json:
        click.echo(json.dumps([letter_dict(d) for d in letters], indent=2))
        return
    if not letters:
        click.echo("no dead letters")
        return
    now = time.time()
    table = Table(title=f"Dead letters ({len(letters)})", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("queue", overflow="fold")
    table.add_column("task", overflow="fold")
    table.add_column("task id", overflow="fold")
    table.add_column("when", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=2)
    for letter in letters:
        table.add_row(letter.id, Text(letter.queue), Text(letter.task or "?"), Text(letter.task_id or "?"),
                      format_age(now - letter.timestamp), Text(one_line(letter.reason), style="red"))
    stdout_console().print(table)


@dlq.command("show")
@app_option
@click.argument("letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dlq_show(app_path: str, letter_id: str, as_json: bool) -> None:
    """Show one dead letter: where it came from, why, and its call if readable."""
    app = load_app(app_path)
    (letter, *_) = operations.find_dead_letters(app, [letter_id])
    data = letter_dict(letter)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    data["when"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.timestamp))
    for name in ("id", "queue", "task", "task_id", "when", "reason", "call", "retries", "decode_error",
                 "size"):
        if data.get(name) is not None:
            click.echo(f"{name + ':':<13}{data[name]}")


@dlq.command("requeue")
@app_option
@click.argument("letter_ids", nargs=-1, metavar="[ID...]")
@click.option("--all", "everything", is_flag=True, help="Requeue every dead letter.")
@yes_option
def dlq_requeue(app_path: str, letter_ids: tuple[str, ...], everything: bool, yes: bool) -> None:
    """Send dead letters back to the queues they came from.

    Do this once what made them fail is fixed (e.g. workers now register the task).
    A task recorded failed when it was dead-lettered runs again under its own id.
    --all asks first on a terminal and needs --yes without one.
    """
    if everything == bool(letter_ids):
        raise click.UsageError("give either ID... or --all")
    app = load_app(app_path)
    if everything:
        count = len(app.broker.list_dead_letters(10_000))
        if not count:
            click.echo("no dead letters")
            return
        confirm_many(f"Requeue every dead letter ({count})?", yes)
        done = operations.requeue_dead_letters(app)
    else:
        done = operations.requeue_dead_letters(app, operations.find_dead_letters(app, letter_ids))
    for letter in done:
        click.echo(f"{letter.id} -> {letter.queue} ({letter.task or '?'} {letter.task_id or '?'})")
    click.echo(f"requeued {len(done)} dead letter{'s' if len(done) != 1 else ''}")


@dlq.command("purge")
@app_option
@yes_option
def dlq_purge(app_path: str, yes: bool) -> None:
    """Drop every dead letter (asks first; needs --yes without a terminal)."""
    app = load_app(app_path)
    confirm_many("Drop every dead letter?", yes)
    count = app.broker.purge_dead_letters()
    click.echo(f"purged {count} dead letter{'s' if count != 1 else ''}")
