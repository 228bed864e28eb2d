"""The worker's end of the control channel: commands an operator queued in the backend.

``yadtq control shutdown | pool-grow N | pool-shrink N`` and ``yadtq revoke --terminate``
queue commands for named workers (:meth:`~yadtq.transports.base.ResultBackend.send_control`);
each worker takes its own every ``CONTROL_POLL`` seconds on a supervised thread of its
own, so a slow backend never delays the consume loop. Where the backend pushes
wake-ups (``transports/wakeups.py``: Redis) it takes them when woken, and looks only
every ``PUSHED_CONTROL_POLL`` seconds otherwise.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..exceptions import YADTQError
from ..transports.base import (
    CONTROL_POOL_GROW,
    CONTROL_POOL_SHRINK,
    CONTROL_SHUTDOWN,
    CONTROL_TERMINATE,
)

if TYPE_CHECKING:
    from ..app import YADTQ
    from .pools import Pool

logger = logging.getLogger(__name__)

#: Seconds between two looks at the control channel.
CONTROL_POLL = 1.0
#: Seconds between two fallback looks while the backend pushes wake-ups.
PUSHED_CONTROL_POLL = 5.0

#: Called with a task id for ``terminate``: stops that task if it runs here.
Terminator = Callable[[str], bool]


class ControlListener:
    """Takes this worker's commands from the backend and carries them out.

    Args:
        app: the worker's app.
        worker: the worker's name (commands are addressed to it).
        pool: the pool that ``pool-grow``/``pool-shrink`` resize.
        shutdown: stops the worker gracefully, as SIGTERM does.
        resized: told the new pool size.
        terminate: stops a running task; set by pools that can (see
            ``yadtq revoke --terminate``); without it the request is logged.
    """

    def __init__(self, app: YADTQ, worker: str, pool: Pool, *, shutdown: Callable[[], None],
                 resized: Callable[[int], None] = lambda size: None,
                 terminate: Optional[Terminator] = None) -> None:
        self.app = app
        self.worker = worker
        self.pool = pool
        self.shutdown = shutdown
        self.resized = resized
        self.terminate = terminate
        #: Whether the backend pushes wake-ups now (set by the worker when it listens).
        self.pushed: Callable[[], bool] = lambda: False
        self._stop = threading.Event()
        self._woken = threading.Event()

    def stop(self) -> None:
        """End :meth:`run` (at once)."""
        self._stop.set()
        self._woken.set()

    def wake(self) -> None:
        """A command was queued for this worker: take it now (any thread)."""
        self._woken.set()

    def run(self) -> None:
        """Take and carry out commands until :meth:`stop` (run by the worker's supervisor)."""
        while True:
            self._woken.wait(PUSHED_CONTROL_POLL if self.pushed() else CONTROL_POLL)
            self._woken.clear()
            if self._stop.is_set():
                return
            try:
                for command in self.app.backend.take_control(self.worker):
                    self.apply(command)
            except YADTQError as exc:
                logger.debug("control channel: %s", exc)

    def apply(self, command: dict[str, Any]) -> None:
        """Carry out one command; an unknown or malformed one is logged and ignored."""
        op = command.get("op")
        if op == CONTROL_SHUTDOWN:
            logger.warning("control: shutdown requested; finishing in-flight tasks")
            self.shutdown()
        elif op in (CONTROL_POOL_GROW, CONTROL_POOL_SHRINK):
            n = command.get("n")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                logger.warning("control: ignoring %s with a bad count %r", op, n)
                return
            size = self.pool.resize(self.pool.size + (n if op == CONTROL_POOL_GROW else -n))
            self.resized(size)
            logger.warning("control: %s %d: pool size is now %d", op, n, size)
        elif op == CONTROL_TERMINATE:
            task_id = str(command.get("task_id", ""))
            if self.terminate is not None and self.terminate(task_id):
                logger.warning("control: terminated task %s", task_id)
            elif self.terminate is None:
                logger.warning("control: cannot terminate task %s: this worker's pool does not stop "
                               "running tasks (it was revoked: it will not start again)", task_id)
        else:
            logger.warning("control: ignoring unknown command %r", command)
