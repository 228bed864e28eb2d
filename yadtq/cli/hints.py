"""Notes a command prints on stderr so a newcomer is not left guessing: where the embedded
database is, and that no live worker consumes a queue a task was sent to."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from .._interrupt import is_cli_process
from ..exceptions import ConfigurationError, YADTQError
from ..settings import DEFAULT_URL

if TYPE_CHECKING:
    from ..app import YADTQ


def embedded_database(app: YADTQ) -> str | None:
    """The absolute path of the default SQLite file, when the app uses that default."""
    settings = app.settings
    if DEFAULT_URL not in (settings.broker_url, settings.backend_url):
        return None
    from ..transports.sqlite.schema import database_path

    return database_path(DEFAULT_URL)


def before_sending(app: YADTQ) -> None:
    """Refuse a bad backend URL now (``submit`` itself never needs the backend, so it would
    go unnoticed until someone waits for a result) and a ``memory://`` broker in the
    command's own process, and say where the embedded database is.

    Raises:
        ConfigurationError: the backend URL names no known transport or is malformed, or
            the broker is ``memory://`` (see :func:`refuse_lost_submit`).
    """
    refuse_lost_submit(app)
    if app.backend is not None:
        note_embedded_database(app)


def refuse_lost_submit(app: YADTQ) -> None:
    """Refuse to send from the ``yadtq`` command's own process on a ``memory://`` broker:
    the task would live in this process only, and be lost when the command exits. (The
    same command run in-process next to a worker thread, as tests do, may.)

    Raises:
        ConfigurationError: the app's broker is ``memory://`` in the command's process.
    """
    if app.settings.broker_url.lower().startswith("memory:") and is_cli_process():
        raise ConfigurationError(
            "the app's broker is memory://, which lives inside one process: a task sent by this "
            "command would be lost when it exits; use sqlite:///path.db or kafka://host:port "
            "(memory:// is for tests and eager runs in one process)")


def note_embedded_database(app: YADTQ) -> None:
    """Say on stderr which file the embedded default uses (it depends on the current directory)."""
    path = embedded_database(app)
    if path is not None:
        click.echo(f"note: using the embedded SQLite database {path} (relative to the current "
                   "directory; set YADTQ_BROKER_URL and YADTQ_BACKEND_URL to choose)", err=True)


def warn_unconsumed(app: YADTQ, queues: Iterable[str]) -> None:
    """Warn on stderr about each queue no live worker consumes: its tasks wait, unseen by
    workers, until one does. Silent when the workers cannot be read."""
    try:
        now = time.time()
        live = [w for w in app.backend.workers() if app.worker_state(w, now) == "alive"]
    except YADTQError:
        return
    served = {q for w in live for q in w.queues}
    for queue in dict.fromkeys(queues):
        if queue not in served:
            click.echo(f"warning: no live worker consumes queue {queue!r}: the task waits until one "
                       f"does (yadtq worker -Q {queue})", err=True)


def refuse_in_process_broker(app: YADTQ) -> None:
    """Refuse to start a worker process on ``memory://``: it would never see a task, since
    every other process has memory transports of its own.

    Raises:
        ConfigurationError: the app's broker is ``memory://``.
    """
    if app.settings.broker_url.lower().startswith("memory:"):
        raise ConfigurationError(
            "the app's broker is memory://, which lives inside one process: a worker started "
            "here would never see tasks sent by another; use sqlite:///path.db or kafka://host:port "
            "(memory:// is for tests and eager runs in one process)")


def refuse_duplicate_name(app: YADTQ, name: str) -> None:
    """Refuse to start a worker under the name of one that is alive: the two would share
    one row in every view and one control channel.

    Raises:
        ConfigurationError: a worker of that name heartbeats and has not stopped.
    """
    now = time.time()
    try:
        workers = app.backend.workers()
    except YADTQError:
        return  # the worker's own registration reports an unreachable backend, in its words
    for info in workers:
        if (info.worker == name and app.worker_state(info, now) == "alive"
                and not _gone(info.hostname, info.pid)):
            raise ConfigurationError(
                f"a worker named {name!r} is already running (pid {info.pid} on {info.hostname or '?'}, "
                f"last heartbeat {max(0.0, now - info.last_heartbeat):.0f} s ago): give this one "
                "another -n/--name")


def _gone(hostname: str, pid: int) -> bool:
    """Whether a worker process on this host has exited (a restart right after a crash is fine)."""
    if hostname != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return pid == os.getpid()
