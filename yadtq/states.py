"""Task states: lower-case strings and the transitions between them."""

from __future__ import annotations

QUEUED = "queued"
SCHEDULED = "scheduled"
PROCESSING = "processing"
RETRYING = "retrying"
SUCCESS = "success"
FAILED = "failed"
REVOKED = "revoked"

ALL_STATES = frozenset({QUEUED, SCHEDULED, PROCESSING, RETRYING, SUCCESS, FAILED, REVOKED})
#: States after which a task never runs again.
READY_STATES = frozenset({SUCCESS, FAILED, REVOKED})
#: States in which a task is waiting for a worker.
WAITING_STATES = frozenset({QUEUED, SCHEDULED, RETRYING})

_ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({SCHEDULED, PROCESSING, REVOKED, FAILED}),
    SCHEDULED: frozenset({QUEUED, PROCESSING, REVOKED, FAILED}),
    PROCESSING: frozenset({PROCESSING, RETRYING, SUCCESS, FAILED, REVOKED}),
    RETRYING: frozenset({QUEUED, PROCESSING, REVOKED, FAILED}),
    SUCCESS: frozenset(),
    FAILED: frozenset(),
    REVOKED: frozenset(),
}


def can_transition(current: str | None, new: str) -> bool:
    """Whether a task in ``current`` (``None``: unknown) may move to ``new``."""
    if current is None:
        return new in ALL_STATES
    return new in _ALLOWED.get(current, frozenset())
