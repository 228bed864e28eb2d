"""The flow-control step of a backend (DESIGN.md section 12): what a backend implements.

A backend that enforces rate limits subclasses :class:`LimitsBackend` next to
:class:`~yadtq.transports.base.ResultBackend`; ``memory.py`` is the reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from .base import ScheduledMessage

# --------------------------------------------------------------------------- flow control
# Rate limits (DESIGN.md section 12; specs in yadtq/flow.py). Kept apart from
# ResultBackend so a third-party backend sees what the step needs; ``memory.py``
# is the reference.


@dataclass(frozen=True)
class RateRequest:
    """A worker asks to start one attempt of a rate-limited task."""

    #: The task name: the limit is shared by every start of this name.
    name: str
    #: The attempt (``<task id>:<retries>``): asking again for one attempt is answered the
    #: same (its start or its reservation is kept), so a redelivery takes no second slot.
    attempt: str
    count: int
    period: float
    #: The message to put in the schedule if the attempt must wait.
    waiting: ScheduledMessage


class LimitsBackend(ABC):
    """The flow control step of the backend; atomic."""

    @abstractmethod
    def admit_rate(self, requests: Sequence[RateRequest]) -> list[Optional[float]]:
        """Decide each request, in order, in ONE atomic step on the backend's clock.

        Starts (and reservations) are kept per name for ``period`` seconds. A request
        whose attempt has a start at or before now is answered ``None`` (start it). Else
        its start time is ``flow.next_start`` of the name's starts: ``None`` if that is
        now (the start is recorded), else the time itself, which is recorded as the
        attempt's reservation while ``waiting`` goes into the schedule, due then, in the
        same step. An attempt already reserved for later gets its reservation again.
        """
