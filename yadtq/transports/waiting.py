"""A queue's waiting deliveries, highest priority first, then in arrival order: what the
in-process broker keeps per queue (``memory.py``)."""

from __future__ import annotations

from collections import deque
from typing import Optional

from ..priority import priority_of
from .base import Delivery


class PriorityDeque:
    """Deliveries by priority level (from their ``yadtq-priority`` header), each level FIFO."""

    def __init__(self) -> None:
        self._levels: dict[int, deque[Delivery]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, delivery: Delivery) -> None:
        """Add at the back of its level."""
        self._levels.setdefault(priority_of(delivery.headers), deque()).append(delivery)
        self._count += 1

    def appendleft(self, delivery: Delivery) -> None:
        """Put back at the front of its level (a delivery handed back unfinished)."""
        self._levels.setdefault(priority_of(delivery.headers), deque()).appendleft(delivery)
        self._count += 1

    def top(self) -> Optional[int]:
        """The highest level with a waiting delivery (``None``: empty)."""
        return max((level for level, waiting in self._levels.items() if waiting), default=None)

    def peek(self) -> Optional[Delivery]:
        """The delivery :meth:`popleft` would return, without taking it."""
        level = self.top()
        return None if level is None else self._levels[level][0]

    def popleft(self) -> Delivery:
        """Take the oldest delivery of the highest level.

        Raises:
            IndexError: empty.
        """
        level = self.top()
        if level is None:
            raise IndexError("pop from an empty queue")
        self._count -= 1
        return self._levels[level].popleft()

    def counts(self) -> dict[int, int]:
        """Waiting deliveries per level (levels with none left out)."""
        return {level: len(waiting) for level, waiting in sorted(self._levels.items()) if waiting}
