"""The storage steps of periodic schedules (DESIGN section 11): what a backend implements.

A backend that keeps periodic schedules subclasses :class:`PeriodicStore` next to
:class:`~yadtq.transports.base.ResultBackend`; ``memory.py`` is the reference. Each
method is one atomic step. The spec is opaque bytes to the backend
(:meth:`yadtq.periodic.Schedule.encode`); times are seconds since the epoch on the
backend's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..exceptions import ConfigurationError
from .base import ResultBackend, ScheduledMessage


@dataclass(frozen=True)
class PeriodicEntry:
    """One stored schedule."""

    name: str
    spec: bytes
    #: When the next tick is due.
    next_run: float
    paused: bool = False
    #: The tick time of the last tick enqueued, and its task id.
    last_run: Optional[float] = None
    last_task_id: Optional[str] = None


class PeriodicStore:
    """Periodic schedules kept in the backend: save, list, claim due ticks, pause, remove."""

    def save_periodic(self, name: str, spec: bytes, next_run: float) -> bool:
        """Insert schedule ``name``, or replace its spec and ``next_run`` when ``spec``
        differs from the stored one (paused and last run are kept). Idempotent: whether
        anything changed."""
        raise NotImplementedError

    def periodic_entries(self) -> list[PeriodicEntry]:
        """Every stored schedule, by name."""
        raise NotImplementedError

    def due_periodic(self, now: Optional[float] = None) -> list[PeriodicEntry]:
        """The schedules not paused whose ``next_run`` is at or before ``now`` (``None``:
        the backend's clock, what workers pass)."""
        raise NotImplementedError

    def advance_periodic(self, name: str, expected: float, next_run: float,
                         tick: Optional[ScheduledMessage]) -> bool:
        """Claim the due tick ``expected`` of schedule ``name``, atomically: only if the
        schedule exists, is not paused, its ``next_run`` is still ``expected`` and that is
        due on the backend's clock. Then ``next_run`` becomes ``next_run``, and ``tick``
        (when given) goes into the schedule of delayed messages and becomes the last run,
        all in the same step, so a crash can neither lose the tick nor enqueue it twice.
        Whether this caller won the claim."""
        raise NotImplementedError

    def pause_periodic(self, name: str, paused: bool, next_run: Optional[float] = None) -> bool:
        """Pause or resume schedule ``name``; ``next_run`` (when given) replaces the stored
        one. Whether the schedule exists."""
        raise NotImplementedError

    def remove_periodic(self, name: str) -> bool:
        """Delete schedule ``name``; whether it existed."""
        raise NotImplementedError


def periodic_store(backend: ResultBackend) -> PeriodicStore:
    """``backend`` as a :class:`PeriodicStore`.

    Raises:
        ConfigurationError: this backend keeps no periodic schedules.
    """
    if not isinstance(backend, PeriodicStore):
        raise ConfigurationError(f"the {backend.scheme}:// backend keeps no periodic schedules")
    return backend
