"""``yadtq revoke ID... [--terminate]``: make tasks never start, or stop them while they run."""

from __future__ import annotations

import click

from .loading import load_app
from .options import app_option


@click.command("revoke")
@app_option
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--terminate", is_flag=True,
              help="Also stop a task that is running (its state is revoked at once).")
def revoke(app_path: str, task_ids: tuple[str, ...], terminate: bool) -> None:
    """Revoke tasks: one not started yet never starts; with --terminate one running now
    is stopped too (process pool: its child is killed; asyncio: cancelled; threads: told,
    see `self.is_revoked()`). Prints `ID revoked` for each.
    """
    app = load_app(app_path)
    for task_id in task_ids:
        app.AsyncResult(task_id).revoke(terminate=terminate)
        click.echo(f"{task_id} revoked" + (" (terminate)" if terminate else ""))
