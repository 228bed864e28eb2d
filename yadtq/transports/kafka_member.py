"""One librdkafka consumer of a worker's Kafka consumer: its buffers, and closing it safely.

``kafka_consumer.py`` keeps one :class:`_Member` per queue a worker consumes.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable, Optional, TypeVar

from confluent_kafka import KafkaError

from .kafka_naming import TP

logger = logging.getLogger(__name__)

#: Longest wait for librdkafka to leave a group at ``close``. Its close can block for
#: good when it serves a rebalance callback (seen: ``rd_kafka_rebalance_protocol`` waiting
#: on the main thread inside ``rd_kafka_consumer_close``); a stopping worker must still stop.
CLOSE_TIMEOUT = 30.0

_T = TypeVar("_T")


class _Unanswered(Exception):
    """A librdkafka call that did not return within its deadline (see :func:`_bounded`)."""


def _bounded(call: Callable[[], _T], timeout: float, name: str) -> _T:
    """Run a blocking librdkafka call with a deadline: on a thread of its own, which is
    abandoned (a daemon) past ``timeout``. A call in C holds its thread beyond the reach of
    signals and timeouts, so the caller's thread must never make it itself. Returns what
    the call returned, raises what it raised, or :class:`_Unanswered`."""
    outcome: list[_T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            raised.append(exc)

    runner = threading.Thread(target=run, name=f"yadtq-{name}", daemon=True)
    runner.start()
    runner.join(timeout)
    if runner.is_alive():
        raise _Unanswered(f"{name} did not return within {timeout:.0f} s")
    if raised:
        raise raised[0]
    return outcome[0]


def _is_fatal(err: Any) -> bool:
    """A fatal librdkafka error: the client never works again (a fenced static member, say).
    A consumer reports it as a message error of code ``_FATAL`` with ``fatal()`` false."""
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def _named(member: _Member, tps: Any) -> str:
    """Partitions for a log line, ``[0, 3, yadtq.q.prio7:3]``: a bare number on the queue's
    topic, ``topic:number`` on a priority lane."""
    return "[" + ", ".join(str(p) if t == member.topic else f"{t}:{p}"
                           for t, p in sorted(tps)) + "]"


def _close_member(member: _Member, before: Callable[[], None]) -> None:
    """Run ``before`` (leave the group, commit), then close the member's librdkafka
    consumer, both on a thread of their own and waiting at most ``CLOSE_TIMEOUT``: past it
    the handle is abandoned (the group drops it after its session timeout, so its
    partitions move on and what it held is redelivered). librdkafka's sync commit has no
    deadline of its own (confluent-kafka-python#1801), so it is inside this one. Raises
    what either raised."""

    def before_and_close() -> None:
        before()
        member.client.close()

    try:
        _bounded(before_and_close, CLOSE_TIMEOUT, f"close-{member.queue}")
    except _Unanswered:
        logger.warning("queue %s: the Kafka consumer did not close within %.0f s; abandoned (the "
                       "group moves its partitions after the session timeout)", member.queue,
                       CLOSE_TIMEOUT)


def _release_member(member: _Member, before: Callable[[], None]) -> None:
    """A static member's stop (KIP-345): run ``before`` (commit what is done), then let
    go of the librdkafka consumer without closing it. confluent-kafka then destroys it
    with ``RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE``: no LeaveGroup, so a worker restarted
    under the same name within the session timeout gets its partitions back without a
    rebalance, and no rebalance callback runs inside the destroy (the one that can
    freeze the process inside close: librdkafka#4041). Bounded like
    :func:`_close_member`."""

    def before_and_release() -> None:
        before()
        member.client = None  # the last reference: the client is destroyed here

    try:
        _bounded(before_and_release, CLOSE_TIMEOUT, f"close-{member.queue}")
    except _Unanswered:
        logger.warning("queue %s: the Kafka consumer did not let go within %.0f s; abandoned",
                       member.queue, CLOSE_TIMEOUT)


class _Member:
    """One librdkafka consumer: this worker's membership in one queue's group, subscribed
    to each priority lane topic of the queue."""

    def __init__(self, queue: str, topics: list[str]) -> None:
        self.queue = queue
        #: The queue's lane topics, lowest lane first; ``topic`` is lane 0, the queue's own.
        self.topics = topics
        self.topic = self.topics[0]
        self.lane = {topic: lane for lane, topic in enumerate(self.topics)}
        self.client: Any = None
        #: Messages fetched and not yet handed out, per lane, each in partition order.
        self.buffers: list[collections.deque[Any]] = [collections.deque() for _ in self.topics]
        self.buffered: collections.Counter[TP] = collections.Counter()
        self.assigned: set[TP] = set()
        #: Whether partitions of a lane above 0 are assigned: then every fetch drains
        #: librdkafka's local queue (see :meth:`KafkaConsumer.fetch`).
        self.laned = False
        self.paused: set[TP] = set()
        self.fatal: Optional[str] = None
        #: Why a fetch of this member raised (``None``: none did). librdkafka may have
        #: moved past messages it never handed over then (see ``KafkaConsumer._pull``).
        self.suspect: Optional[str] = None
        #: Its name for the link state (kafka_link.py).
        self.name = f"consumer of {queue}"

    def waiting(self) -> int:
        """Messages fetched and not yet handed out."""
        return sum(len(buffer) for buffer in self.buffers)

    def clear_buffers(self) -> None:
        for buffer in self.buffers:
            buffer.clear()
        self.buffered.clear()

    def discard_buffered(self, tps: set[TP]) -> None:
        if any(self.buffered.get(tp) for tp in tps):
            self.buffers = [collections.deque(m for m in buffer if (m.topic(), m.partition()) not in tps)
                            for buffer in self.buffers]
        for tp in tps:
            self.buffered.pop(tp, None)

    def update_lanes(self) -> None:
        self.laned = any(topic != self.topic for topic, _ in self.assigned)

