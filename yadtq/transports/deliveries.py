"""The data of the broker contract: a :class:`Delivery` as a consumer hands it out, a
:class:`DeadLetter` as operators see it, and the callbacks a broker is given
(``base.py`` re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..envelope import HEADER_ID, HEADER_TASK, peek_task_id
from ..quick_init import quick_init
from .types import Message


@quick_init
@dataclass(frozen=True)
class Delivery:
    """A message as a consumer received it.

    ``token`` is opaque to everyone but the transport that made it (partition
    and offset for Kafka, a row id for SQLite).
    """

    body: bytes
    queue: str
    headers: Mapping[str, bytes] = field(default_factory=dict)
    key: Optional[bytes] = None
    token: Any = None


@dataclass(frozen=True)
class DeadLetter:
    """A message in the dead-letter queue: where it came from and why it can never run.

    ``id`` names it within its broker (Kafka: ``partition-offset`` of the dead-letter
    topic; SQLite and memory: a row number).
    """

    id: str
    queue: str
    reason: str
    #: When it was dead-lettered (epoch seconds).
    timestamp: float
    body: bytes
    headers: Mapping[str, bytes] = field(default_factory=dict)
    key: Optional[bytes] = None

    @property
    def task_id(self) -> Optional[str]:
        """The task id, from the headers or else the body, as far as readable."""
        raw = self.headers.get(HEADER_ID)
        if raw:
            return raw.decode("utf-8", "replace")
        return peek_task_id(self.body)

    @property
    def task(self) -> Optional[str]:
        """The task name from the headers, if any."""
        raw = self.headers.get(HEADER_TASK)
        return raw.decode("utf-8", "replace") if raw else None

    def message(self) -> Message:
        """The message to publish to requeue it."""
        return Message(queue=self.queue, body=self.body, key=self.key, headers=dict(self.headers))


#: Called by a consumer that is about to lose deliveries (e.g. a Kafka rebalance):
#: the worker finishes what it can within ``timeout`` seconds and reports it done.
DrainCallback = Callable[[float], None]


#: Called with (task id or ``None``, error text) for a message the broker finally refused.
DeliveryErrorHook = Callable[[Optional[str], str], None]
