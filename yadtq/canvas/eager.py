"""Running a canvas in the caller (``eager=True``): each task, then what it sets off.

The same follow-ups as on a worker (``followups.py``), stored in the same steps;
instead of a scheduler publishing them, they are taken from the schedule and run
here at once, until nothing is left.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import states
from ..envelope import Envelope, decode
from ..worker.executor import execute, outcome_change
from .followups import FollowUps

if TYPE_CHECKING:
    from ..app import YADTQ

#: Seconds a follow-up taken from the schedule is leased (nothing else reads it).
_LEASE = 3600.0


def run_eagerly(app: YADTQ, envelopes: Sequence[Envelope]) -> None:
    """Run ``envelopes`` and everything they set off, in order, in this thread."""
    pending = deque(envelopes)
    while pending:
        envelope = pending.popleft()
        while True:
            outcome = execute(app, envelope, "eager")
            change = outcome_change(envelope, outcome, "eager")
            if outcome.state != states.RETRYING:
                break
            app.backend.record([change])
            envelope = envelope.next_attempt(outcome.retry_eta or 0.0)
        follow_ups = FollowUps(app)
        follow_ups.add(envelope, outcome)
        follow_ups.record(app.backend, [change], [])
        due = app.backend.claim_due(math.inf, 100_000, _LEASE)
        pending.extend(decode(entry.message.body, app.settings.secret_key) for entry in due)
        app.backend.release_due(due)
