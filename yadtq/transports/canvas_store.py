"""The storage steps of groups and chords (DESIGN.md section 10): what a backend implements.

A backend that keeps groups and chords subclasses :class:`CanvasBackend` next to
:class:`~yadtq.transports.base.ResultBackend`; ``memory.py`` is the reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from .base import RECENT_LIMIT, ScheduledMessage, StateChange

# --------------------------------------------------------------------------- canvas storage
# Groups and chords (DESIGN.md section 10). Kept apart from ResultBackend so a
# third-party backend sees what these steps need; ``memory.py`` is the reference.

#: Chord states in :class:`GroupInfo`.
CHORD_OPEN, CHORD_FIRED, CHORD_FAILED = "open", "fired", "failed"


@dataclass(frozen=True)
class GroupSpec:
    """A group to store before any of its members is sent.

    ``callback`` makes it a chord: the message of the chord's callback, put in the
    schedule (due at once) by the step that records the last member's success.
    """

    group_id: str
    #: The task id whose result stands for each member, in submission order.
    member_ids: tuple[str, ...]
    created: float
    callback: Optional[ScheduledMessage] = None


@dataclass(frozen=True)
class ChordJoin:
    """Count a chord member that just finished: by its stored state, in the same step."""

    chord_id: str
    #: The member's position in the chord (counted once, however often it is recorded).
    index: int
    #: The task whose stored state decides: ``success`` counts, ``failed`` fails the chord.
    task_id: str


@dataclass(frozen=True)
class GroupInfo:
    """A stored group and, for a chord, its progress."""

    group_id: str
    member_ids: tuple[str, ...]
    created: float
    #: The chord's callback task id (``None`` for a plain group).
    callback_id: Optional[str] = None
    #: Members counted successful so far (chords only).
    done: int = 0
    #: ``open``, ``fired`` (callback scheduled) or ``failed`` (chords only).
    state: Optional[str] = None
    #: The member whose failure failed the chord.
    failed_member: Optional[str] = None

    @property
    def size(self) -> int:
        return len(self.member_ids)


class CanvasBackend(ABC):
    """The storage steps of groups and chords; each one atomic."""

    @abstractmethod
    def save_groups(self, groups: Sequence[GroupSpec]) -> None:
        """Store groups (member ids, and for chords the callback message and a zero count)."""

    @abstractmethod
    def record_joined(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      joins: Sequence[ChordJoin]) -> None:
        """:meth:`ResultBackend.record` and chord counting in ONE atomic step.

        After the changes are applied, each join looks at its task's stored state: a
        success adds the member's index to the chord's set of done members (so a member
        recorded twice counts once); when the set is full, the chord is ``fired`` and its
        callback goes into the schedule, due now, exactly once. A failed or revoked member
        makes the chord ``failed`` (the callback never runs).
        """

    @abstractmethod
    def group_info(self, group_id: str) -> Optional[GroupInfo]:
        """The stored group, or ``None`` (unknown or expired)."""

    @abstractmethod
    def open_chords(self, limit: int = RECENT_LIMIT) -> list[GroupInfo]:
        """Chords still waiting for members, oldest first (for the monitor)."""
