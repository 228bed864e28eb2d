"""Wake-ups a backend pushes to a worker, so an idle worker waits instead of asking.

Without them a worker asks its backend every second whether a control command
came for it or whether a scheduled message (a client's countdown, a periodic
schedule added from the command line) is due sooner than it planned to look. A
backend that subclasses :class:`WakeupSource` tells it instead: the worker then
looks only when woken, when what it knows is due, and at a slow fallback pace
(``worker/scheduler.py``, ``worker/control.py``). ``redis/wakeups.py`` pushes them
over Redis pub/sub; a backend without them keeps the one-second pace.

Wake-ups are hints, never the only way work is found: one lost (a dropped
connection) costs latency until the fallback look, and after every (re)connect
the listener wakes every kind, since some may have been missed meanwhile.
"""

from __future__ import annotations

from typing import Callable, Optional

from .base import ResultBackend

#: A control command was queued for this worker (``send_control``).
WAKE_CONTROL = "control"
#: The schedule's earliest entry moved earlier, or a periodic schedule was saved or resumed.
WAKE_SCHEDULE = "schedule"
WAKE_KINDS = (WAKE_CONTROL, WAKE_SCHEDULE)

#: Called with a ``WAKE_*`` kind, from the listener's thread.
Wake = Callable[[str], None]


class WakeupWatch:
    """A running listener (see :meth:`WakeupSource.watch_wakeups`)."""

    @property
    def live(self) -> bool:
        """Whether wake-ups arrive now (subscribed); while not, callers look at their
        short pace."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening (promptly; the listener's thread is a daemon)."""
        raise NotImplementedError


class WakeupSource:
    """A backend that pushes wake-ups to workers."""

    def watch_wakeups(self, worker: str, wake: Wake) -> WakeupWatch:
        """Listen, on a thread of its own, for the wake-ups of worker ``worker``: calls
        ``wake(kind)`` for each, and for every kind after each (re)connection.

        Raises:
            BackendUnavailable: the first subscription failed (the caller then looks at
                its short pace; nothing is retried).
        """
        raise NotImplementedError


def wakeup_source(backend: ResultBackend) -> Optional[WakeupSource]:
    """``backend`` as a :class:`WakeupSource`, or ``None`` when it pushes none."""
    return backend if isinstance(backend, WakeupSource) else None
