"""Waiting for sent tasks, for the client commands: the broker's confirmation, then
each task's outcome (``yadtq submit``, ``result``, ``schedule``, the shell)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import click

from .. import states
from ..exceptions import BrokerUnavailable
from .render import format_error, format_value

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..result import AsyncResult

#: Seconds to wait for the broker to confirm sent tasks.
FLUSH_TIMEOUT = 30.0


class TaskFailed(click.ClickException):
    """A task the command waited for failed or was revoked: one line, exit 1."""


def flush(app: YADTQ) -> None:
    """Wait until the broker has every sent task.

    Raises:
        BrokerUnavailable: some were not confirmed within ``FLUSH_TIMEOUT`` seconds.
    """
    pending = app.flush(FLUSH_TIMEOUT)
    if pending:
        raise BrokerUnavailable(f"{pending} tasks not confirmed by the broker after {FLUSH_TIMEOUT:.0f} s")


def outcome(result: AsyncResult[Any], timeout: Optional[float]) -> tuple[str, Any]:
    """Wait for ``result``: ``(state, value)``, the value being the error text unless ``success``.

    Raises:
        yadtq.TimeoutError: not finished within ``timeout`` seconds.
    """
    value = result.get(timeout=timeout, propagate=False)
    record = result.info
    state = record.state if record is not None else states.QUEUED
    if state == states.SUCCESS:
        return state, value
    if record is not None and record.error is not None:
        return state, format_error(record.error.type, record.error.message)
    return state, format_error(type(value).__name__, str(value))


def print_outcome(result: AsyncResult[Any], timeout: Optional[float]) -> None:
    """Wait for ``result`` and print its value.

    Raises:
        TaskFailed: the task failed or was revoked.
        yadtq.TimeoutError: not finished within ``timeout`` seconds.
    """
    state, value = outcome(result, timeout)
    if state != states.SUCCESS:
        raise TaskFailed(value)
    click.echo(format_value(value))

