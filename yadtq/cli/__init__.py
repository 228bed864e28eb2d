"""The ``yadtq`` command line: a click group with one module per command family.

Errors: a :class:`~yadtq.YADTQError` ends the command with one ``Error: ...`` line on
stderr and exit status 1; usage errors exit 2 as click reports them; Ctrl-C exits 130.
"""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from ..exceptions import YADTQError
from .bench import bench
from .dashboard import dashboard
from .dlq import dlq
from .inspection import inspect_command, tasks_command
from .monitor import monitor
from .operate import control, retry
from .options import EXIT_INTERRUPTED
from .render import one_line
from .revoke import revoke
from .schedule import schedule
from .shell import shell
from .submit import submit
from .tasks import purge, result, status
from .worker import worker


class YadtqGroup(click.Group):
    """A click group whose commands share one outermost error guard."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except YADTQError as exc:
            raise click.ClickException(one_line(str(exc)) or type(exc).__name__) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order added, the worker first


@click.group(cls=YadtqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="yadtq")
def main() -> None:
    """yadtq: a Celery-style task queue on Kafka and Redis (or the embedded SQLite default).

    Commands that use an app take -A/--app (or $YADTQ_APP) naming it as 'module' or
    'module:attribute'. Transports come from the app, or from $YADTQ_BROKER_URL and
    $YADTQ_BACKEND_URL.
    """


for _command in (worker, submit, status, result, revoke, purge, monitor, inspect_command,
                 tasks_command, schedule, retry, dlq, control, dashboard, bench, shell):
    main.add_command(_command)

__all__ = ["main"]
