"""GroupResult: the results of a group's members, in submission order."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..exceptions import ConfigurationError, GroupNotFound
from ..exceptions import TimeoutError as ResultTimeout
from ..result import AsyncResult
from ..transports.base import TaskRecord
from ..transports.canvas_store import CanvasBackend, GroupInfo

if TYPE_CHECKING:
    from ..app import YADTQ


def canvas_backend(app: YADTQ) -> CanvasBackend:
    """The app's backend as a canvas store.

    Raises:
        ConfigurationError: the backend cannot store groups and chords.
    """
    backend = app.backend
    if not isinstance(backend, CanvasBackend):
        raise ConfigurationError(f"the {backend.scheme}:// backend cannot store groups and chords")
    return backend


class GroupResult:
    """The results of a group, in the order its members were given. ``str(g)`` is its id;
    ``app.GroupResult(id)`` reopens it in any process."""

    def __init__(self, group_id: str, results: Sequence[AsyncResult[Any]], app: YADTQ) -> None:
        self.id = group_id
        self.results: list[AsyncResult[Any]] = list(results)
        self.app = app
        #: The result this group follows in a chain, when it came from one sent here.
        self.parent: Optional[Any] = None

    @classmethod
    def restore(cls, group_id: str, app: YADTQ) -> GroupResult:
        """The group stored under ``group_id``.

        Raises:
            GroupNotFound: no such group (never stored, or expired with its results).
        """
        info = canvas_backend(app).group_info(str(group_id))
        if info is None:
            raise GroupNotFound(f"no group {group_id} (unknown or expired)")
        return cls(info.group_id, [AsyncResult(i, app) for i in info.member_ids], app)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} ({len(self.results)} members)>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult[Any]]:
        return iter(self.results)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _records(self) -> list[Optional[TaskRecord]]:
        return self.app.backend.get([r.id for r in self.results])

    def _states(self) -> list[str]:
        return [r.state if r is not None else states.QUEUED for r in self._records()]

    def ready(self) -> bool:
        """Whether every member has finished (success, failed or revoked)."""
        return all(s in states.READY_STATES for s in self._states())

    def successful(self) -> bool:
        """Whether every member succeeded."""
        return all(s == states.SUCCESS for s in self._states())

    def failed(self) -> bool:
        """Whether any member failed."""
        return any(s == states.FAILED for s in self._states())

    def waiting(self) -> bool:
        """Whether any member has not finished yet."""
        return not self.ready()

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(1 for s in self._states() if s == states.SUCCESS)

    def info(self) -> Optional[GroupInfo]:
        """What the backend stores of the group (for a chord: its progress)."""
        return canvas_backend(self.app).group_info(self.id)

    def get(self, timeout: Optional[float] = None, propagate: bool = True,
            interval: Optional[float] = None) -> list[Any]:
        """Wait for every member; their results in submission order.

        Raises:
            yadtq.TimeoutError: not all finished within ``timeout`` seconds.
            Exception: with ``propagate``, the first failed member's exception (in order).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result, record in zip(self.results, self._records()):  # one read for the ready ones
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                values.append(result._get(record, remaining, propagate))
            except ResultTimeout:
                raise ResultTimeout(f"group {self.id} not ready after {timeout} s") from None
        return values

    join = get

    def revoke(self) -> None:
        """Revoke every member that has not started."""
        self.app.backend.revoke([r.id for r in self.results], time.time())

    def forget(self) -> None:
        """Delete the members' stored states and results."""
        self.app.backend.forget([r.id for r in self.results])
