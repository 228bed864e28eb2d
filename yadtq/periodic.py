"""Periodic task specs: what a schedule says, and when it fires next (no transport code).

A :class:`Schedule` names a task, its arguments and either a cron expression (read
in ``timezone``, daylight-saving changes handled by ``cronsim`` the way Debian's
cron does: a time skipped by a spring-forward fires at the first minute after the
gap, a time repeated by a fall-back fires once) or a fixed ``every`` seconds
(aligned to multiples of ``every`` since the epoch, so every worker computes the
same ticks). The backend keeps each schedule's encoded spec and ``next_run``; the
ticker in ``worker/ticker.py`` claims due ticks there (see ``docs/periodic.md``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from .envelope import pack, unpack
from .exceptions import ConfigurationError, YADTQError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

#: Catch-up policies for ticks missed while no worker ran.
CATCH_UP_ONCE = "once"
CATCH_UP_NONE = "none"
CATCH_UP = (CATCH_UP_ONCE, CATCH_UP_NONE)
#: A tick claimed more than this late (seconds) counts as missed; shorter periods use
#: ``max(MIN_GRACE, period)`` so a busy worker picking a tick up late loses nothing.
MAX_GRACE = 60.0
MIN_GRACE = 2.0
_SPEC_VERSION = 1
_TICK_NAMESPACE = uuid.UUID("5b0e3c55-7d1c-4f0b-9a51-9f6c2d1e8a11")


@dataclass(frozen=True)
class Schedule:
    """One periodic schedule: run ``task`` with ``args``/``kwargs`` on ``cron`` or ``every``.

    Raises:
        ConfigurationError: (at construction) neither or both of ``cron``/``every``, a
            cron expression cronsim cannot read, an unknown timezone, a bad ``catch_up``.
    """

    name: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cron: Optional[str] = None
    every: Optional[float] = None
    timezone: str = "UTC"
    catch_up: str = CATCH_UP_ONCE
    queue: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a periodic schedule needs a name")
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(f"schedule {self.name!r}: give exactly one of cron= or every=")
        if self.every is not None and not (isinstance(self.every, (int, float))
                                           and math.isfinite(self.every) and self.every > 0):
            raise ConfigurationError(f"schedule {self.name!r}: every= must be a positive number "
                                     f"of seconds, not {self.every!r}")
        if self.catch_up not in CATCH_UP:
            raise ConfigurationError(f"schedule {self.name!r}: catch_up must be one of "
                                     f"{', '.join(CATCH_UP)}, not {self.catch_up!r}")
        zone = self.zone()
        if self.cron is not None:
            from cronsim import CronSim, CronSimError  # here: only cron schedules need it

            try:
                CronSim(self.cron, datetime.now(zone))
            except (CronSimError, ValueError) as exc:
                raise ConfigurationError(f"schedule {self.name!r}: bad cron expression "
                                         f"{self.cron!r}: {exc}") from None

    def zone(self) -> ZoneInfo:
        """The schedule's timezone."""
        # Imported here, as cronsim is: a process whose app declares no schedule (most
        # workers) never loads them (about 1 MB of its RSS).
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"schedule {self.name!r}: unknown timezone "
                                     f"{self.timezone!r} ({exc})") from None

    # ------------------------------------------------------------------ ticks
    def next_after(self, moment: float) -> float:
        """The first tick strictly after ``moment`` (seconds since the epoch)."""
        if self.every is not None:
            return (math.floor(moment / self.every) + 1) * self.every
        assert self.cron is not None
        from cronsim import CronSim

        start = datetime.fromtimestamp(moment, self.zone())
        return next(CronSim(self.cron, start)).timestamp()

    def describe(self) -> str:
        """``cron "0 3 * * *" Europe/Berlin`` or ``every 30 s``, for listings."""
        if self.every is not None:
            return f"every {self.every:g} s"
        return f"cron {self.cron!r} {self.timezone}"

    # ------------------------------------------------------------------ storage
    def encode(self) -> bytes:
        """The spec as the backend stores it (compared byte for byte to spot a change)."""
        return pack([_SPEC_VERSION, self.task, list(self.args), dict(self.kwargs), self.cron,
                     self.every, self.timezone, self.catch_up, self.queue])

    @classmethod
    def decode(cls, name: str, spec: bytes) -> Schedule:
        """The schedule ``name`` stored as ``spec``.

        Raises:
            ConfigurationError: the spec is unreadable or invalid.
        """
        try:
            version, task, args, kwargs, cron, every, tz, catch_up, queue = unpack(spec)
        except (YADTQError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"schedule {name!r}: unreadable spec ({exc})") from None
        if version != _SPEC_VERSION:
            raise ConfigurationError(f"schedule {name!r}: spec version {version} unknown")
        return cls(name, task, tuple(args), dict(kwargs), cron, every, tz, catch_up, queue)


@dataclass(frozen=True)
class Tick:
    """What the ticker does with a due schedule: enqueue ``run_at`` (``None``: skip) and
    move ``next_run`` on."""

    run_at: Optional[float]
    next_run: float
    missed: bool = False


def grace(schedule: Schedule, tick: float) -> float:
    """How late (seconds) ``tick`` may be claimed and still count as on time."""
    period = schedule.next_after(tick) - tick
    return min(MAX_GRACE, max(MIN_GRACE, period))


def plan(schedule: Schedule, next_run: float, now: float) -> Tick:
    """What to do with the due tick ``next_run`` at ``now`` (both on the backend's clock).

    On time (no later than :func:`grace`): enqueue it, next run is the tick after it.
    Missed (no worker ran): ``catch_up="once"`` enqueues it once, ``"none"`` skips it,
    and either way the next run is the first tick after ``now``, so however many ticks
    were missed, at most one runs.
    """
    if now - next_run <= grace(schedule, next_run):
        return Tick(next_run, schedule.next_after(next_run))
    run_at = next_run if schedule.catch_up == CATCH_UP_ONCE else None
    return Tick(run_at, schedule.next_after(now), missed=True)


def tick_id(name: str, run_at: float) -> str:
    """The task id of schedule ``name``'s tick at ``run_at``: the same on every worker, so
    a tick enqueued twice would still be one task."""
    return uuid.uuid5(_TICK_NAMESPACE, f"{name}@{run_at!r}").hex
