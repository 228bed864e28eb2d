"""The ``yadtq`` command line: a click group with one module per command family.

Errors: a :class:`~yadtq.YADTQError` ends the command with one ``Error: ...`` line on
stderr and exit status 1; usage errors exit 2 as click reports them; Ctrl-C exits 130.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from .. import __version__
from ..exceptions import YADTQError
from .options import EXIT_INTERRUPTED
from .worker import worker


class YadtqGroup(click.Group):
    """A click group whose commands share one outermost error guard.

    ``worker`` is added at import; the other commands (``commands.py``) only when one
    of them is asked for or the commands are listed, so a worker process does not
    load their modules."""

    _all_loaded = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except YADTQError as exc:
            from .render import one_line  # rich: loaded by the commands that print tables

            raise click.ClickException(one_line(str(exc)) or type(exc).__name__) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None

    def _load_all(self) -> None:
        if not self._all_loaded:
            from .commands import COMMANDS

            for command in COMMANDS:
                self.add_command(command)
            self._all_loaded = True

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands:
            self._load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return list(self.commands)  # in the order added, the worker first


@click.group(cls=YadtqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="yadtq")
def main() -> None:
    """yadtq: a Celery-style task queue on Kafka and Redis (or the embedded SQLite default).

    Commands that use an app take -A/--app (or $YADTQ_APP) naming it as 'module' or
    'module:attribute'. Transports come from the app, or from $YADTQ_BROKER_URL and
    $YADTQ_BACKEND_URL.
    """


main.add_command(worker)

__all__ = ["main"]
