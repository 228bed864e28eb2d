"""Options several commands share: ``-A/--app`` and ``-Q/--queues``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def app_option(fn: F) -> F:
    """``-A/--app MODULE[:ATTR]``, defaulting to ``$YADTQ_APP``."""
    return click.option(
        "-A", "--app", "app_path", metavar="MODULE[:ATTR]", envvar="YADTQ_APP", show_envvar=True,
        default="", help="The app to load: 'module' or 'module:attribute' (e.g. examples.math_app).",
    )(fn)


def queues_option(help_text: str) -> Callable[[F], F]:
    """``-Q/--queues q1,q2``: repeatable, and each value may be a comma list."""
    return click.option("-Q", "--queues", "queues", multiple=True, metavar="QUEUE[,QUEUE...]",
                        help=help_text)


def split_queues(values: Sequence[str]) -> list[str]:
    """``("a,b", "c", "a")`` -> ``["a", "b", "c"]``: comma lists flattened, order kept, no repeats.

    Raises:
        click.BadParameter: an empty queue name.
    """
    queues: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                raise click.BadParameter(f"empty queue name in {value!r}", param_hint="'-Q' / '--queues'")
            if name not in queues:
                queues.append(name)
    return queues


def yes_option(fn: F) -> F:
    """``-y/--yes``: do not ask for confirmation."""
    return click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")(fn)


def interactive() -> bool:
    """Whether there is a terminal to ask on."""
    import sys

    return sys.stdin.isatty()


def confirm_many(question: str, yes: bool) -> None:
    """Ask ``question`` on a terminal before changing many things; ``--yes`` skips it.

    Raises:
        click.ClickException: no terminal to ask on and no ``--yes``.
        click.Abort: the answer was no.
    """
    if yes:
        return
    if not interactive():
        raise click.ClickException("refusing without --yes (no terminal to confirm on)")
    ask(question)


#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def ask(question: str) -> None:
    """``click.confirm`` that aborts on "no", and exits 130 on Ctrl-C like every command.

    Raises:
        click.Abort: the answer was no (or input ended).
        click.exceptions.Exit: Ctrl-C at the prompt (status 130).
    """
    try:
        click.confirm(question, abort=True, err=True)
    except click.Abort as exc:
        # click turns Ctrl-C at a prompt into Abort (exit 1); the interrupt is its context.
        if isinstance(exc.__context__, KeyboardInterrupt):
            click.echo("", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        raise
