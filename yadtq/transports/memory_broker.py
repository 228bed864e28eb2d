"""``memory://`` broker side: queues as in-process deques (:class:`MemoryBroker`) and
their :class:`MemoryConsumer`.

Deliveries a consumer has not reported done go back to the head of their queue when
it closes; dead letters are kept in a bounded deque with row-number ids.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .base import Broker, Consumer, DeadLetter, Delivery, DrainCallback, Message
from .waiting import PriorityDeque

if TYPE_CHECKING:
    from ..settings import Settings


class MemoryBroker(Broker):
    """Queues as in-process deques."""

    scheme = "memory"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self._queues: dict[str, PriorityDeque] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=10_000)
        self._dead_ids = itertools.count(1)
        self._cond = threading.Condition()
        self._tokens = itertools.count(1)
        self._turn = 0

    def publish(self, messages: Sequence[Message]) -> None:
        with self._cond:
            for m in messages:
                delivery = Delivery(body=m.body, queue=m.queue, headers=dict(m.headers),
                                    key=m.key, token=next(self._tokens))
                self._queues.setdefault(m.queue, PriorityDeque()).append(delivery)
            self._cond.notify_all()

    def consumer(self, queues: Sequence[str], *, on_drain: Optional[DrainCallback] = None,
                 worker: Optional[str] = None) -> Consumer:
        return MemoryConsumer(self, list(queues))

    def purge(self, queue: str) -> int:
        with self._cond:
            waiting = self._queues.pop(queue, None)
            return len(waiting) if waiting is not None else 0

    def depth(self, queue: str) -> Optional[int]:
        with self._cond:
            waiting = self._queues.get(queue)
            return len(waiting) if waiting is not None else 0

    def depth_by_priority(self, queue: str) -> Optional[dict[str, int]]:
        with self._cond:
            waiting = self._queues.get(queue)
            return {str(level): count for level, count in waiting.counts().items()} if waiting else {}

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        with self._cond:
            return [Delivery(body=d.body, queue=d.queue, headers=dict(d.headers), key=d.key, token=d.id)
                    for d in list(self._dead)[-limit:]] if limit > 0 else []

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._cond:
            return list(self._dead)[-limit:] if limit > 0 else []

    def requeue_dead_letters(self, ids: Optional[Sequence[str]] = None) -> list[DeadLetter]:
        with self._cond:
            wanted = None if ids is None else set(ids)
            chosen = [d for d in self._dead if wanted is None or d.id in wanted]
            self.publish([d.message() for d in chosen])
            for letter in chosen:
                self._dead.remove(letter)
            return chosen

    def purge_dead_letters(self) -> int:
        with self._cond:
            count = len(self._dead)
            self._dead.clear()
            return count

    def dead_letter_message(self, message: Message, reason: str) -> None:
        self._dead_letter(Delivery(body=message.body, queue=message.queue,
                                   headers=dict(message.headers), key=message.key), reason)

    def queues_with_tasks(self) -> list[str]:
        with self._cond:
            return sorted(name for name, waiting in self._queues.items() if waiting)

    def peek(self, queue: str) -> Optional[Delivery]:
        with self._cond:
            waiting = self._queues.get(queue)
            return waiting.peek() if waiting else None

    # used by MemoryConsumer
    def _take(self, queues: Sequence[str], max_items: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                taken: list[Delivery] = []
                while len(taken) < max_items:
                    # The highest priority among the queues' heads; equal ones in turn.
                    best: Optional[PriorityDeque] = None
                    best_level = -1
                    start = self._turn % len(queues)
                    for name in [*queues[start:], *queues[:start]]:
                        waiting = self._queues.get(name)
                        level = waiting.top() if waiting is not None else None
                        if level is not None and level > best_level:
                            best, best_level = waiting, level
                    if best is None:
                        break
                    self._turn += 1
                    taken.append(best.popleft())
                if taken or max_items <= 0:
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _requeue(self, deliveries: Sequence[Delivery]) -> None:
        with self._cond:
            for d in reversed(deliveries):
                self._queues.setdefault(d.queue, PriorityDeque()).appendleft(d)
            self._cond.notify_all()

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._cond:
            self._dead.append(DeadLetter(str(next(self._dead_ids)), delivery.queue, reason, time.time(),
                                         delivery.body, dict(delivery.headers), delivery.key))


class MemoryConsumer(Consumer):
    def __init__(self, broker: MemoryBroker, queues: list[str]) -> None:
        self._broker = broker
        self._queues = queues
        self._lock = threading.Lock()
        self._outstanding: dict[int, Delivery] = {}

    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        taken = self._broker._take(self._queues, max_items, timeout)
        with self._lock:
            for d in taken:
                self._outstanding[d.token] = d
        return taken

    def done(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            for d in deliveries:
                self._outstanding.pop(d.token, None)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._broker._dead_letter(delivery, reason)
        self.done([delivery])

    def in_flight(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def close(self) -> None:
        with self._lock:
            left = list(self._outstanding.values())
            self._outstanding.clear()
        if left:
            self._broker._requeue(left)
