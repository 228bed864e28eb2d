"""Supervision of a worker's threads.

Every long-lived worker thread (recorder, heartbeat, scheduler, pool threads)
runs under a :class:`Supervisor`. An unexpected exception is logged with its
traceback, shows in the worker's health (its heartbeat reports it unhealthy,
with the reason), and the thread's loop is started again after a short backoff,
so a thread never dies silently while the process keeps taking work.

Where a restart alone is not safe, because the crash may have lost work that
only that thread held (the recorder's batch of outcomes), the thread is
restarted *and* the worker is told to stop with a non-zero exit status: it
finishes and stores what it can, and every delivery it did not report done is
delivered again elsewhere.

Loops that survive their own errors (the consume loop) report them with
:meth:`Supervisor.fault`, so their health is visible the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

logger = logging.getLogger(__name__)

#: First and longest pause before a crashed loop runs again.
RESTART_DELAY = 0.1
RESTART_DELAY_MAX = 5.0
#: A loop that ran this long before crashing restarts after the first delay again.
STABLE_AFTER = 30.0


@dataclass
class Fault:
    """The latest unexpected error of one component."""

    component: str
    error: str
    at: float
    #: Sticks until the worker exits (the worker is stopping because of it).
    fatal: bool = False

    def describe(self) -> str:
        return f"{self.component}: {self.error}"


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Supervisor:
    """Runs a worker's threads and keeps track of their faults.

    Args:
        heal_after: seconds after its latest fault that a restarted component
            counts as healthy again.
        on_fatal: called (once per fatal crash) with the reason when a component
            spawned with ``fatal=True`` crashes; the worker then stops and exits
            non-zero.
    """

    def __init__(self, heal_after: float, on_fatal: Optional[Callable[[str], None]] = None) -> None:
        self.heal_after = heal_after
        self.on_fatal = on_fatal
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def spawn(self, name: str, target: Callable[[], None], *, restart: bool = True,
              fatal: bool = False) -> threading.Thread:
        """Start ``target`` in a daemon thread ``yadtq-<name>`` and supervise it.

        A normal return ends the thread. An exception is logged and recorded as a
        fault; with ``restart`` the target runs again (until :meth:`close`); with
        ``fatal`` the supervisor's ``on_fatal`` is called as well.
        """
        thread = threading.Thread(target=self._guard, args=(name, target, restart, fatal),
                                  name=f"yadtq-{name}", daemon=True)
        thread.start()
        return thread

    def _guard(self, name: str, target: Callable[[], None], restart: bool, fatal: bool) -> None:
        delay = RESTART_DELAY
        while True:
            started = time.monotonic()
            try:
                target()
                return
            except BaseException as exc:  # supervision: nothing may end a worker thread silently
                action = "restarting it" if restart and not self._closed.is_set() else "not restarted"
                logger.critical("worker thread %s crashed (%s); %s", name, describe(exc), action,
                                exc_info=exc)
                self._record(name, describe(exc), fatal)
                if fatal and self.on_fatal is not None:
                    try:
                        self.on_fatal(f"{name} crashed: {describe(exc)}")
                    except Exception:
                        logger.exception("handling the crash of %s failed", name)
            if not restart:
                return
            if time.monotonic() - started > STABLE_AFTER:
                delay = RESTART_DELAY
            if self._closed.wait(delay):
                return
            delay = min(delay * 2, RESTART_DELAY_MAX)

    def fault(self, component: str, error: BaseException) -> None:
        """Record an error a loop survived by itself; it shows in :meth:`problems` for a while."""
        self._record(component, describe(error), False)

    def _record(self, component: str, error: str, fatal: bool) -> None:
        with self._lock:
            previous = self._faults.get(component)
            self._faults[component] = Fault(component, error, time.monotonic(),
                                            fatal or bool(previous and previous.fatal))

    def problems(self) -> list[str]:
        """What is wrong now: fatal faults, and faults newer than ``heal_after``."""
        now = time.monotonic()
        with self._lock:
            return [f.describe() for f in self._faults.values()
                    if f.fatal or now - f.at <= self.heal_after]

    def close(self) -> None:
        """No more restarts; loops running now end as they normally would."""
        self._closed.set()
