"""A process-pool child's side: run the envelopes the pool sends, answer with outcomes.

``process_pool.ProcessPool`` starts each child on :func:`child_main` and reads its answers
with :func:`outcome_from`; :func:`death` says how a child that died ended.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Optional

from .. import signals, states
from ..envelope import decode, pack, unpack
from ..transports.base import ErrorInfo
from .childlog import log_to_parent
from .executor import Outcome, error_info, execute

if TYPE_CHECKING:
    from ..app import YADTQ

#: Seconds between an idle pool child's checks that its parent is still there.
PARENT_CHECK_INTERVAL = 1.0


def child_main(conn: Connection, app: Optional[YADTQ], app_path: Optional[str], worker: str,
                log_pipe: Optional[Connection] = None, log_level: int = logging.WARNING) -> None:
    """A pool child: receive encoded envelopes, send back encoded outcomes. What it logs
    goes to the worker's log (``childlog.py``).

    It ignores SIGINT and SIGTERM: a stop signal sent to the whole process group
    (Ctrl-C, systemd's KillMode=control-group, container inits) reaches the
    parent too, and the parent alone decides: it lets running tasks finish, then
    closes the pipe (the child's cue to exit) or kills the child.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if log_pipe is not None:
        log_to_parent(log_pipe, log_level)
    parent = os.getppid()
    if app is None:
        from ..cli.loading import load_app

        app = load_app(app_path or "")
    signals.worker_process_init.send(worker=worker)
    while True:
        try:
            while not conn.poll(PARENT_CHECK_INTERVAL):
                if os.getppid() != parent:  # orphaned (the worker exited at once): leave too
                    return
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not data:  # the parent's stop
            return
        envelope = decode(data)
        try:
            outcome = execute(app, envelope, worker)
        except BaseException as exc:  # a task that raises SystemExit must not end the child
            now = time.time()
            outcome = Outcome(envelope.id, states.FAILED, now, now, error=error_info(exc))
        err = outcome.error
        try:
            conn.send_bytes(pack([
                outcome.task_id, outcome.state, outcome.started, outcome.finished, outcome.result,
                [err.type, err.message, err.args, err.traceback] if err else None, outcome.retry_eta,
            ]))
        except OSError:  # the parent is gone (it exited at once): the task is delivered again
            return


def outcome_from(data: bytes) -> Outcome:
    task_id, state, started, finished, result, err, retry_eta = unpack(data)
    return Outcome(task_id, state, started, finished, result=result,
                   error=ErrorInfo(*err) if err else None, retry_eta=retry_eta)


def death(process: Any) -> str:
    """How a pool child ended, for the task's error."""
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"pool child {process.pid} was killed by {name}{hint} while running it"
    return f"pool child {process.pid} died (exit status {code}) while running it"
