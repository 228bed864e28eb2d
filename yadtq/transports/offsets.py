"""Offset tracking for acks-late commits: per partition, the highest offset below which all is done.

A Kafka consumer hands out many messages of one partition at once and they
finish in any order. The offset it may commit (the next offset to consume) is
the lowest offset still outstanding, or one past the highest handed-out offset
when nothing is outstanding. Committing exactly that is what makes DESIGN.md §4
hold: no task is lost by a crash (nothing unfinished lies below the committed
offset) and a slow task never holds back the handing out of later ones.

The tracker is pure bookkeeping: it knows no Kafka client. Every operation is
O(log n) in the number of outstanding offsets of the partition: outstanding
offsets sit in a min-heap with lazy deletion (a finished offset leaves the heap
only when it reaches the top). It is thread-safe: ``finished`` is called from
whichever thread stored an outcome.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Optional

logger = logging.getLogger(__name__)

#: A (topic, partition) pair.
TopicPartition = tuple[str, int]


class _Partition:
    """The outstanding offsets of one partition."""

    __slots__ = ("heap", "highest", "outstanding")

    def __init__(self) -> None:
        self.heap: list[int] = []
        self.outstanding: set[int] = set()
        #: The highest offset ever handed out (-1: none yet).
        self.highest = -1

    def position(self) -> Optional[int]:
        """The offset to commit, or ``None`` when nothing was handed out yet."""
        heap = self.heap
        while heap and heap[0] not in self.outstanding:
            heapq.heappop(heap)  # finished earlier: deleted lazily
        if heap:
            return heap[0]
        return self.highest + 1 if self.highest >= 0 else None


class OffsetTracker:
    """Tracks handed-out and finished offsets per partition and what may be committed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _Partition] = {}
        #: The last position reported committed per partition.
        self._committed: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> bool:
        """Record that ``offset`` of ``tp`` was handed out; ``False`` if it already was outstanding."""
        with self._lock:
            part = self._partitions.get(tp)
            if part is None:
                part = self._partitions[tp] = _Partition()
            if offset in part.outstanding:
                return False
            part.outstanding.add(offset)
            heapq.heappush(part.heap, offset)
            if offset > part.highest:
                part.highest = offset
            return True

    def finished(self, tp: TopicPartition, offset: int) -> bool:
        """Record that ``offset`` of ``tp`` is done; ``False`` if it was not outstanding
        (already finished, or its partition was dropped)."""
        with self._lock:
            part = self._partitions.get(tp)
            if part is None or offset not in part.outstanding:
                return False
            part.outstanding.discard(offset)
            # Keep the heap from filling with finished offsets behind a slow head.
            if len(part.heap) > 2 * len(part.outstanding) + 64:
                part.heap = list(part.outstanding)
                heapq.heapify(part.heap)
            return True

    def position(self, tp: TopicPartition) -> Optional[int]:
        """The committable position of ``tp`` (the next offset to consume), or ``None``."""
        with self._lock:
            part = self._partitions.get(tp)
            return None if part is None else part.position()

    def committable(self, partitions: Optional[Iterable[TopicPartition]] = None) -> dict[TopicPartition, int]:
        """Positions that moved past the last :meth:`mark_committed`, per partition.

        Args:
            partitions: only these partitions (default: every tracked one).
        """
        with self._lock:
            wanted = self._partitions.keys() if partitions is None else partitions
            result: dict[TopicPartition, int] = {}
            for tp in wanted:
                part = self._partitions.get(tp)
                if part is None:
                    continue
                pos = part.position()
                if pos is not None and pos > self._committed.get(tp, -1):
                    result[tp] = pos
            return result

    def mark_committed(self, positions: Mapping[TopicPartition, int]) -> None:
        """Remember that ``positions`` were committed (or are being committed)."""
        with self._lock:
            for tp, pos in positions.items():
                if tp in self._partitions and pos > self._committed.get(tp, -1):
                    self._committed[tp] = pos

    def forget_committed(self, partitions: Iterable[TopicPartition]) -> None:
        """A commit failed: report these partitions' positions as committable again."""
        with self._lock:
            for tp in partitions:
                self._committed.pop(tp, None)

    def drop(self, tp: TopicPartition) -> int:
        """Forget a partition (revoked or lost); returns how many offsets were outstanding."""
        with self._lock:
            part = self._partitions.pop(tp, None)
            self._committed.pop(tp, None)
            return 0 if part is None else len(part.outstanding)

    def in_flight(self, tp: Optional[TopicPartition] = None) -> int:
        """Outstanding offsets of ``tp``, or of every partition."""
        with self._lock:
            if tp is not None:
                part = self._partitions.get(tp)
                return 0 if part is None else len(part.outstanding)
            return sum(len(p.outstanding) for p in self._partitions.values())

    def in_flight_by_partition(self) -> dict[TopicPartition, int]:
        """Outstanding offsets per tracked partition, in one locked step."""
        with self._lock:
            return {tp: len(p.outstanding) for tp, p in self._partitions.items()}

    def partitions(self) -> list[TopicPartition]:
        """The partitions currently tracked."""
        with self._lock:
            return list(self._partitions)
