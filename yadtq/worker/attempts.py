"""What the worker's loop knows of each attempt: who the worker is, the attempt a
delivery carries, a decoded delivery waiting for its claim, the order a fetched batch
starts in, and whether its arguments fit the task; the counters the heartbeat reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Protocol

from .. import states
from ..canvas.steps import GATHER
from ..envelope import Envelope
from ..transports.base import Delivery
from .executor import Outcome

if TYPE_CHECKING:
    from ..task import Task


class StatsObserver(Protocol):
    """What :class:`yadtq.metrics.TaskMetrics` offers the consumer."""

    def observe(self, outcomes: Iterable[tuple[str, str, float]]) -> None: ...

    def claims_refused(self, decisions: Iterable[str]) -> None: ...


@dataclass
class WorkerStats:
    """Counters the heartbeat reports."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    #: ``time.monotonic()`` of the loop's latest turn, for health.
    last_turn: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Told of every stored batch and refused claim (``yadtq worker --metrics-port``).
    observer: Optional[StatsObserver] = None

    def count(self, outcomes: Sequence[Outcome]) -> None:
        with self.lock:
            for outcome in outcomes:
                if outcome.state == states.SUCCESS:
                    self.done += 1
                elif outcome.state == states.FAILED:
                    self.failed += 1
                elif outcome.state == states.RETRYING:
                    self.retried += 1

    def finished(self) -> int:
        """Attempts stored so far, whatever their outcome."""
        return self.done + self.failed + self.retried


@dataclass(frozen=True)
class Identity:
    """Who a worker is: its name and this process incarnation."""

    name: str
    instance: str


#: A task's attempt: (task id, retries). Two attempts of one task are distinct deliveries.
AttemptKey = tuple[str, int]


def attempt_of(envelope: Envelope) -> AttemptKey:
    """The attempt a delivery carries."""
    return envelope.id, envelope.retries


@dataclass
class Pending:
    """A decoded delivery waiting for a claim decision, with repeats of the same attempt."""

    envelope: Envelope
    delivery: Delivery
    duplicates: list[Delivery] = field(default_factory=list)

    def deliveries(self) -> list[Delivery]:
        return [self.delivery, *self.duplicates]


def by_priority(pending: Iterable[Pending]) -> list[Pending]:
    """``pending`` with the highest priority first, in fetch order within a level: the pool
    starts them in this order, so a high-priority task fetched in the same batch as lower
    ones (or, on Kafka, from a lower lane) never waits behind them."""
    ordered = list(pending)
    if len(ordered) > 1:
        ordered.sort(key=lambda p: -(p.envelope.options.get("priority") or 0))
    return ordered


def arguments_mismatch(task: Task[Any, Any], envelope: Envelope) -> Optional[str]:
    """Why the envelope's arguments do not fit the task's signature (bound against the
    signature cached on the task), or ``None`` when they do. A chord callback gets its
    members' results as first argument when it runs: a stand-in takes their place."""
    args = (None, *envelope.args) if envelope.canvas.get(GATHER) else envelope.args
    try:
        task.check_arguments(args, envelope.kwargs)
    except TypeError as exc:
        return f"{task.name}() {exc}"
    return None
