"""Flow control specs (DESIGN.md section 12): rate limits, parsed and checked here;
enforced by the backend's atomic ``admit_rate`` step (``LimitsBackend`` in
transports/base.py) when a worker is about to claim a task.

The limit is a sliding window on the backend's clock: at most ``count`` starts in
any window of ``period`` seconds, no burst beyond. A task over the limit gets the
earliest start time that keeps every window within the limit (a *reservation*)
and waits in the schedule until then; so a backlog is spread over the future in one
step per task, never polled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from .exceptions import ConfigurationError

#: Seconds per unit of a rate limit spec.
PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
#: A reserved task's schedule entry is due this share of the period after its slot (at most
#: ``MAX_SLACK`` seconds): its start, seen from the task's code, follows the worker's claim,
#: and the starts it is spaced from followed theirs by a varying claim latency too.
SLACK_SHARE = 0.01
MAX_SLACK = 0.5
#: Why a task waits in the schedule (shown by ``inspect`` and the monitor).
WAIT_RATE_LIMIT = "rate_limit"
#: The message header of a task waiting on a limit: why (``rate_limit 60/m``); informative.
HEADER_WAITING = "yadtq-waiting"


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` starts in any ``period`` seconds, cluster-wide."""

    count: int
    period: float

    def __str__(self) -> str:
        unit = next(u for u, s in PERIODS.items() if s == self.period)
        return f"{self.count}/{unit}"


def parse_rate_limit(spec: str) -> RateLimit:
    """``"100/s"``, ``"10/m"`` or ``"5/h"`` as a :class:`RateLimit`.

    Raises:
        ConfigurationError: not ``N/s|m|h`` with N at least 1.
    """
    match = _RATE.match(spec) if isinstance(spec, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ConfigurationError(f"rate_limit {spec!r} is not N/s, N/m or N/h with N >= 1")
    return RateLimit(int(match.group(1)), PERIODS[match.group(2)])


def next_start(starts: Sequence[float], count: int, period: float, now: float) -> float:
    """The earliest start time at or after ``now`` (and after every start in ``starts``,
    the ascending start times and reservations inside the window) that keeps every
    window of ``period`` seconds within ``count`` starts. The reference for the
    backends' atomic steps (``rate.lua`` does the same in Redis)."""
    at = max(now, starts[-1]) if starts else now
    if len(starts) >= count:
        at = max(at, starts[len(starts) - count] + period)
    return at


def slack(period: float) -> float:
    """How long after its reserved slot a waiting task's schedule entry is due."""
    return min(period * SLACK_SHARE, MAX_SLACK)


def waiting_reason(limit: Optional[RateLimit]) -> str:
    """The reason recorded for a task waiting on ``limit``."""
    return f"{WAIT_RATE_LIMIT} {limit}" if limit is not None else WAIT_RATE_LIMIT


def admit(starts: dict[str, float], attempt: str, count: int, period: float, now: float) -> float:
    """One rate request against ``starts`` (attempt -> start time or reservation, of one
    task name), updated in place: the attempt's start time, ``<= now`` to start now.
    Entries older than the window are dropped. The reference for the backends' steps."""
    for old in [a for a, at in starts.items() if at <= now - period]:
        del starts[old]
    held = starts.get(attempt)
    if held is not None:
        return held
    at = next_start(sorted(starts.values()), count, period, now)
    starts[attempt] = at
    return at
