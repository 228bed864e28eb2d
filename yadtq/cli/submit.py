"""``yadtq submit``: send one task typed on the command line (or a file of them,
``submit_file.py``), print its id, and with ``--wait`` its result."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from .calls import check_call, check_serializable, parse_arg, parse_kwargs, queue_of, resolve_name
from .hints import before_sending, warn_unconsumed
from .loading import load_app
from .options import app_option
from .submit_file import submit_file
from .waiting import flush, print_outcome


class _SubmitCommand(click.Command):
    """Remembers how many words followed ``--``: those are arguments even if they look
    like options (``yadtq submit greet -- -x`` sends the string ``"-x"``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            ctx.meta[_LITERAL] = len(args) - args.index("--") - 1
        return super().parse_args(ctx, args)


_LITERAL = "yadtq.submit.literal"


@click.command("submit", cls=_SubmitCommand, context_settings={"ignore_unknown_options": True})
@app_option
@click.argument("task", required=False)
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--countdown", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Run no earlier than this many seconds from now.")
@click.option("--queue", help="Send to this queue instead of the task's own.")
@click.option("--key", help="Routing key: tasks with one key run in order on one partition.")
@click.option("--priority", type=click.IntRange(0, 9), metavar="0-9",
              help="Priority of TASK: higher runs first (default: the task's own, else 0).")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="Submit every task of a JSON file (see below) instead of TASK.")
@click.option("--wait", is_flag=True, help="Wait for the result(s) and print them.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Wait at most this long (implies --wait; exit 1 if not finished).")
@click.option("--json", "as_json", is_flag=True,
              help="With --file: print a JSON list of {id, task, ...} (with --wait: state, result or error).")
def submit(app_path: str, task: Optional[str], args: tuple[str, ...], kwargs_json: Optional[str],
           countdown: Optional[float], queue: Optional[str], key: Optional[str], file: Optional[Path],
           wait: bool, timeout: Optional[float], as_json: bool = False,
           priority: Optional[int] = None) -> None:
    """Send a task, or every task of a file; print the task id(s).

    TASK is a registered name, an unambiguous short name (add), or a full dotted
    name sent as is even if this app does not register it. Each ARG is read as JSON,
    else as a Python literal, else as a string: `add 2 3` sends two ints, `greet bob`
    the string "bob", `greet '"42"'` the string "42".

    \b
    With --file, the file is a JSON list of tasks:
      [{"task": "add", "args": [1, 2], "kwargs": {}, "countdown": 0}, ...]
    ("args", "kwargs", "countdown", "queue" and "key" are optional); --wait then
    prints a table of results.

    Exit status: 0 on success; 1 if a task failed, a wait timed out, or on any
    other error; 2 for wrong usage.
    """
    wait = wait or timeout is not None
    if file is not None:
        if task is not None:
            raise click.UsageError("give either TASK [ARGS...] or --file, not both")
        if kwargs_json is not None:
            raise click.UsageError("--kwargs applies to a single TASK, not to --file")
        if priority is not None:
            raise click.UsageError("--priority applies to a single TASK, not to --file")
        submit_file(app_path, file, countdown=countdown, queue=queue, key=key, wait=wait, timeout=timeout,
                    as_json=as_json)
        return
    if task is None:
        raise click.UsageError("missing TASK (or --file)")
    if as_json:
        raise click.UsageError("--json applies to --file")
    values = [parse_arg(a) for a in args]
    literal = click.get_current_context().meta.get(_LITERAL, 0)  # after "--": never options
    for raw, value in zip(args[:max(0, len(args) - literal)], values):
        if isinstance(value, str) and raw.startswith("-"):
            raise click.UsageError(f"no such option: {raw} (to send it as a string, quote it as JSON: "
                                   f"'\"{raw}\"', or put it after --)")
    kwargs = parse_kwargs(kwargs_json)
    check_serializable(args, values, kwargs)
    app = load_app(app_path)
    name = resolve_name(app, task)
    if name in app.tasks:
        check_call(app.tasks[name], tuple(values), kwargs)
    before_sending(app)
    result = app.send_task(name, values, kwargs, countdown=countdown, queue=queue, key=key,
                           priority=priority)
    flush(app)
    click.echo(result.id)
    warn_unconsumed(app, [queue_of(app, name, queue)])
    if wait:
        print_outcome(result, timeout)

