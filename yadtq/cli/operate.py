"""``yadtq retry`` and ``yadtq control``: acting on tasks and workers (``yadtq revoke`` is
in ``revoke.py``)."""

from __future__ import annotations

from typing import Optional

import click

from .. import operations
from ..transports.base import CONTROL_POOL_GROW, CONTROL_POOL_SHRINK, CONTROL_SHUTDOWN
from .loading import load_app
from .options import app_option, confirm_many, yes_option

#: Most failed tasks ``retry --failed`` considers.
RETRY_LIMIT = 10_000


@click.command("retry")
@app_option
@click.argument("task_id", required=False, metavar="[ID]")
@click.option("--failed", "all_failed", is_flag=True, help="Retry every kept failed task.")
@click.option("--name", "name_glob", metavar="GLOB",
              help="With --failed: only tasks whose name (or short name) matches, e.g. 'math.*'.")
@yes_option
def retry(app_path: str, task_id: Optional[str], all_failed: bool, name_glob: Optional[str],
          yes: bool) -> None:
    """Run a failed task again under a new id, printed as `OLD -> NEW`.

    A failed task's message is kept for result_expires (default 1 day) so that it
    can be retried; each one is retried at most once. With --failed, every kept
    failed task (matching --name) is retried; that asks first on a terminal and
    needs --yes without one.
    """
    if all_failed == (task_id is not None):
        raise click.UsageError("give either ID or --failed")
    if name_glob and not all_failed:
        raise click.UsageError("--name applies to --failed")
    app = load_app(app_path)
    if task_id is not None:
        click.echo(f"{task_id} -> {operations.retry(app, task_id)}")
        return
    found = operations.failed_to_retry(app, name_glob, RETRY_LIMIT)
    if not found:
        click.echo("no failed tasks to retry" + (f" matching {name_glob!r}" if name_glob else ""))
        return
    names = sorted({m.name for m in found})
    confirm_many(f"Retry {len(found)} failed task{'s' if len(found) != 1 else ''} "
                 f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})?", yes)
    done = operations.retry_many(app, [m.task_id for m in found])
    for old, new in done:
        click.echo(f"{old} -> {new}")
    click.echo(f"retried {len(done)} task{'s' if len(done) != 1 else ''}", err=True)


@click.group("control")
def control() -> None:
    """Send a command to workers through the backend (all live workers by default).

    \b
      shutdown       stop gracefully, as SIGTERM does
      pool-grow N    run N more tasks at once
      pool-shrink N  run N fewer tasks at once (at least 1)

    Workers pick commands up within about a second.
    """


def _send(app_path: str, op: str, n: Optional[int], worker: Optional[str], yes: bool) -> None:
    app = load_app(app_path)
    if worker is None:
        live = operations.live_workers(app)
        if len(live) > 1:
            confirm_many(f"Send {op}{f' {n}' if n else ''} to {len(live)} workers?", yes)
    workers = operations.control(app, op, n=n, worker=worker)
    click.echo(f"sent {op}{f' {n}' if n else ''} to {len(workers)} "
               f"worker{'s' if len(workers) != 1 else ''}: {', '.join(workers)}")


def _worker_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--worker", "-w", "worker", metavar="NAME",
                        help="Only this worker (default: every live worker).")(fn)


@control.command("shutdown")
@app_option
@_worker_option
@yes_option
def control_shutdown(app_path: str, worker: Optional[str], yes: bool) -> None:
    """Stop workers gracefully (they finish in-flight tasks)."""
    _send(app_path, CONTROL_SHUTDOWN, None, worker, yes)


@control.command("pool-grow")
@app_option
@click.argument("n", type=click.IntRange(min=1), metavar="N")
@_worker_option
@yes_option
def control_pool_grow(app_path: str, n: int, worker: Optional[str], yes: bool) -> None:
    """Let workers run N more tasks at once."""
    _send(app_path, CONTROL_POOL_GROW, n, worker, yes)


@control.command("pool-shrink")
@app_option
@click.argument("n", type=click.IntRange(min=1), metavar="N")
@_worker_option
@yes_option
def control_pool_shrink(app_path: str, n: int, worker: Optional[str], yes: bool) -> None:
    """Let workers run N fewer tasks at once (never fewer than 1)."""
    _send(app_path, CONTROL_POOL_SHRINK, n, worker, yes)

