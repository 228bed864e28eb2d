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


def confirm_many(question: str, yes: bool) -> None:
    """Ask ``question`` on a terminal before changing many things; ``--yes`` skips it.

    Raises:
        click.ClickException: no terminal to ask on and no ``--yes``.
        click.Abort: the answer was no.
    """
    if yes:
        return
    import sys

    if not sys.stdin.isatty():
        raise click.ClickException("refusing without --yes (no terminal to confirm on)")
    click.confirm(question, abort=True, err=True)
