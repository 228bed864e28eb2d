"""The Kafka consumer side: one worker's group memberships, fetch, commit, drain.

See ``kafka.py``'s docstring for the delivery guarantees this module keeps:
offsets are committed only for deliveries reported done (acks-late), from the
offset tracker (no head-of-line blocking), by the one thread that owns the
librdkafka consumers; revoked partitions are drained before they are committed.
This module joins the groups and fetches; ``kafka_group.py`` commits and serves
rebalances, ``kafka_member.py`` is one librdkafka consumer.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import (
    KafkaError,
    KafkaException,
    TopicPartition,
)

from ..exceptions import BrokerUnavailable
from ..priority import LANES
from .base import Consumer, Delivery, DrainCallback
from .kafka_config import COMMIT_INTERVAL, MULTI_QUEUE_SLICE
from .kafka_errors import _error_text
from .kafka_group import GroupState
from .kafka_member import _close_member, _is_fatal, _Member, _release_member
from .kafka_naming import TP, KafkaToken, group_for, lane_topics
from .offsets import OffsetTracker

if TYPE_CHECKING:
    from .kafka import KafkaBroker

logger = logging.getLogger(__name__)

#: What one fetch takes from librdkafka's local queue of a member with priority lanes:
#: everything there (librdkafka's prefetch is bounded by ``queued.max.messages.kbytes``).
DRAIN = 100_000
#: Closing: longest wait for the revocation that unsubscribing sets off, how often it is
#: looked for, and how many prefetched messages one look drops (see ``_leave``).
LEAVE_TIMEOUT = 10.0
LEAVE_POLL = 0.1
LEAVE_BATCH = 1000


class KafkaConsumer(GroupState, Consumer):
    """A worker's consumer of one or more queues; see the module docstring for the guarantees.

    ``fetch`` and ``close`` (and every librdkafka call) run on the owner thread, except
    that ``close`` hands a member's last steps to a thread of its own, to bound them,
    and waits for it; ``done`` and ``dead_letter`` may be called from any thread.
    """

    def __init__(self, broker: KafkaBroker, queues: Sequence[str], on_drain: Optional[DrainCallback],
                 max_in_flight: int, drain_timeout: float, member_name: Optional[str] = None) -> None:
        self._broker = broker
        #: ``group.instance.id`` (static membership), or ``None``.
        self._member_name = member_name
        self._on_drain = on_drain
        self._max_in_flight = max_in_flight
        self._drain_timeout = drain_timeout
        self._tracker = OffsetTracker()
        #: Guards ``_generations`` together with the tracker updates that depend on it.
        self._lock = threading.Lock()
        self._generations: dict[TP, int] = {}
        #: Partitions whose revocation is being drained now (``revoking``; no longer ``owns``).
        self._revoking: frozenset[TP] = frozenset()
        self._members: list[_Member] = []
        self._rotation = 0
        self._last_commit = time.monotonic()
        self._closing = False
        self._closed = False
        #: Partitions revoked or lost so far (for health and tests).
        self.revocations = 0
        #: Members rebuilt after a fatal error (for health and tests).
        self.rebuilds = 0
        try:
            for queue in queues:
                self._members.append(self._join(queue))
        except BaseException:
            for member in self._members:
                member.client.close()
            raise

    def _join(self, queue: str) -> _Member:
        naming = self._broker.naming
        member = _Member(queue, lane_topics(naming, queue))
        self._broker.ensure_topic(member.topic)
        link = self._broker.link

        def on_error(err: Any) -> None:
            if _is_fatal(err):
                logger.critical("Kafka consumer of %s: fatal error: %s", queue, err.str())
                member.fatal = f"{err.name()}: {err.str()}"
            else:
                logger.warning("Kafka consumer of %s: %s", queue, err.str())

        static: dict[str, Any] = {}
        if self._member_name:
            static["group.instance.id"] = self._member_name
        member.client = self._broker._client(RdConsumer, self._broker.config(
            "consumer", client=member.name, **{"group.id": group_for(naming, queue),
                                               "enable.auto.commit": False,
                                               "enable.auto.offset.store": False, **static},
            on_commit=self._on_commit, error_cb=link.error_cb(member.name, on_error)))
        try:
            # Every lane, existing or not: librdkafka joins a lane topic created later at
            # its next metadata refresh (LANE_DISCOVERY_MS), at no cost before that.
            member.client.subscribe(
                member.topics,
                on_assign=lambda _c, parts: self._on_assign(member, parts),
                on_revoke=lambda _c, parts: self._on_revoke(member, parts),
                on_lost=lambda _c, parts: self._on_lost(member, parts))
        except KafkaException as exc:
            member.client.close()
            raise BrokerUnavailable(f"cannot subscribe to {member.topic}: {_error_text(exc)}") from exc
        return member

    # ------------------------------------------------------------------ owner thread
    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Hand out up to ``max_items`` deliveries, waiting at most ``timeout`` for the first.

        Always polls every member, even for ``max_items == 0``: that serves rebalance
        callbacks and keeps the member within ``max.poll.interval.ms`` while the
        worker's pool is full. Commits what became committable on the way.
        """
        if self._closed:
            raise BrokerUnavailable("the Kafka consumer is closed")
        self._recover()
        deadline = time.monotonic() + max(0.0, timeout)
        out: list[Delivery] = []
        pulled = 0
        try:
            while True:
                self._commit_due()
                members = self._rotated()
                for member in members:
                    # With priority lanes assigned, librdkafka's local queue is drained each
                    # time: a high-lane message must not wait in it behind lower ones. The
                    # in-flight bound then pauses the partitions that hold a backlog, and a
                    # paused partition's prefetched messages leave librdkafka's queue.
                    want = DRAIN if member.laned else max(1, max_items - len(out) - member.waiting())
                    pulled += self._pull(member, want, 0.0)
                if len(out) < max_items:
                    out.extend(self._hand_out_all(members, max_items - len(out)))
                remaining = deadline - time.monotonic()
                # librdkafka waits in whole milliseconds: a sub-millisecond remainder
                # would make poll() return at once, over and over (a busy loop).
                if out or (max_items <= 0 and pulled) or remaining < 0.001:
                    break
                # Nothing yet: block on one member until its first message (or a slice).
                wait = min(remaining, self._wait_slice())
                for member in self._rotated():
                    got = self._pull(member, 1, wait)
                    pulled += got
                    if got:
                        break
        except (KafkaException, RuntimeError) as exc:
            if out:
                # Deliveries already handed out are outstanding in the tracker: they must
                # reach the worker, or their partition's offset could never move past them.
                logger.warning("Kafka consume failed after %d deliveries were taken: %s",
                               len(out), _error_text(exc))
                return out
            if isinstance(exc, RuntimeError):  # the client was closed underneath us
                raise BrokerUnavailable(f"Kafka consumer unusable: {exc}") from exc
            raise BrokerUnavailable(f"Kafka consume failed: {_error_text(exc)}") from exc
        self._adjust_flow()
        return out

    def _wait_slice(self) -> float:
        """Longest one blocking poll may last: a slice per queue when there are several;
        with one, ``COMMIT_INTERVAL`` while offsets may need committing, else the whole
        wait (an idle worker wakes when its fetch ends, not five times a second)."""
        if len(self._members) != 1:
            return MULTI_QUEUE_SLICE
        if self._tracker.in_flight() or self._tracker.committable():
            return COMMIT_INTERVAL
        return float("inf")

    def _recover(self) -> None:
        """Replace each member whose librdkafka consumer hit a fatal error (e.g. fenced), or
        whose fetch raised (``_Member.suspect``).

        A fatal consumer never works again, so its partitions are released as lost
        (nothing committed: they may be someone else's already) and it joins anew. A
        suspect one may have skipped messages it never handed over: it commits what is
        done (every offset handed out lies below them), leaves the group as a stopping
        worker does, and joins anew, so its partitions start over from the committed
        offsets and nothing is skipped.
        """
        for index, member in enumerate(self._members):
            if member.fatal is not None:
                self._let_go_fatal(member)
            elif member.suspect is not None:
                logger.warning("queue %s: a fetch failed after messages may have been taken (%s); "
                               "rejoining the group from the committed offsets", member.queue,
                               member.suspect)
                self._part(member)
                if member.assigned:  # static (never left), or the leave went unanswered
                    self._release(member, set(member.assigned), "released")
            else:
                continue
            member.clear_buffers()
            self._members[index] = self._join(member.queue)  # BrokerUnavailable: retried next turn
            self.rebuilds += 1

    def _let_go_fatal(self, member: _Member) -> None:
        """Release a fatally failed member's partitions as lost and let go of its consumer."""
        logger.error("Kafka consumer of %s hit a fatal error (%s); rebuilding it", member.queue,
                     member.fatal)
        if self._member_name is not None and "FENCED" in str(member.fatal).upper():
            # Another live consumer uses this group.instance.id (two workers with one
            # name): fencing it back would start an endless duel, so join dynamically.
            logger.error("another consumer uses group.instance.id %s (two workers named alike?); "
                         "continuing without static membership", self._member_name)
            self._member_name = None
        self._on_lost(member, [TopicPartition(*tp) for tp in set(member.assigned)])
        # Let go, never close: nothing can be committed or left any more, and a close
        # would serve a revocation inside it (see _leave).
        _release_member(member, lambda: None)
        self._broker.link.forget(member.name)

    def _rotated(self) -> list[_Member]:
        members = self._members
        if len(members) == 1:
            return members
        self._rotation = (self._rotation + 1) % len(members)
        return members[self._rotation:] + members[:self._rotation]

    def _pull(self, member: _Member, count: int, timeout: float) -> int:
        """Move up to ``count`` messages from librdkafka into the member's buffer."""
        if member.fatal is not None or member.suspect is not None:
            return 0  # rebuilt at the next fetch
        try:
            if timeout > 0:
                first = member.client.poll(timeout)  # returns at its first message
                messages = [first] if first is not None else []
            else:
                messages = member.client.consume(min(count, 100_000), 0)
        except BaseException as exc:
            # When a callback served inside the call raised (ours, or confluent-kafka's own
            # incremental assign after one), confluent-kafka destroys the messages the call
            # had taken and raises: librdkafka's position is past them, and handing out the
            # next ones would let a commit skip them. Nothing more of this member is handed
            # out; it is rebuilt from the committed offsets first (_recover).
            member.suspect = f"{type(exc).__name__}: {exc}"
            raise
        pulled = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if _is_fatal(err):
                    logger.critical("Kafka consumer of %s: fatal error: %s", member.queue, err.str())
                    member.fatal = f"{err.name()}: {err.str()}"
                    continue
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART and msg.topic() in member.topics[1:]:
                    # A priority lane nothing was sent to yet: joined once it exists.
                    logger.debug("Kafka consumer of %s: %s", member.queue, err.str())
                elif err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("Kafka consumer of %s: %s", member.queue, err.str())
                continue
            member.buffers[member.lane.get(msg.topic(), 0)].append(msg)
            member.buffered[(msg.topic(), msg.partition())] += 1
            pulled += 1
        return pulled

    def _hand_out_all(self, members: list[_Member], count: int) -> list[Delivery]:
        """Up to ``count`` buffered deliveries, highest priority lane first (of any queue)."""
        taken: list[Delivery] = []
        for lane in range(len(LANES) - 1, -1, -1):
            for member in members:
                if len(taken) < count and member.buffers[lane]:
                    taken.extend(self._hand_out(member, lane, count - len(taken)))
        return taken

    def _hand_out(self, member: _Member, lane: int, count: int) -> list[Delivery]:
        taken: list[Delivery] = []
        buffer, buffered = member.buffers[lane], member.buffered
        with self._lock:
            while buffer and len(taken) < count:
                msg = buffer.popleft()
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                tp = (topic, partition)
                buffered[tp] -= 1
                generation = self._generations.get(tp)
                if generation is None or not self._tracker.started(tp, offset):
                    continue  # partition no longer ours, or a duplicate of one in flight
                headers = msg.headers()
                taken.append(Delivery(
                    body=msg.value() or b"", queue=member.queue,
                    headers={k: v or b"" for k, v in headers} if headers else {},
                    key=msg.key(), token=KafkaToken(topic, partition, offset, generation)))
        return taken

    def _adjust_flow(self) -> None:
        """Pause partitions at the in-flight bound; resume them once half of it is free."""
        bound = self._max_in_flight
        in_flight = self._tracker.in_flight_by_partition()
        for member in self._members:
            pause, resume = [], []
            for tp in member.assigned:
                load = member.buffered.get(tp, 0) + in_flight.get(tp, 0)
                if tp in member.paused:
                    if load <= bound // 2:
                        resume.append(tp)
                elif load >= bound:
                    pause.append(tp)
            try:
                if pause:
                    member.client.pause([TopicPartition(*tp) for tp in pause])
                    member.paused.update(pause)
                    logger.debug("paused %s at %d in flight", pause, bound)
                if resume:
                    member.client.resume([TopicPartition(*tp) for tp in resume])
                    member.paused.difference_update(resume)
            except KafkaException as exc:
                logger.warning("Kafka consumer of %s: pause/resume failed: %s", member.queue,
                               _error_text(exc))

    def _leave(self, member: _Member) -> None:
        """Give up the member's partitions before its close: unsubscribe, and serve the
        revocation that follows here, where librdkafka still answers (what is done is
        committed in it); then commit what is left.

        Never leave a revocation to ``close``: confluent-kafka serves a rebalance callback
        inside close by asking librdkafka for the rebalance protocol while holding the
        GIL, and once the group has terminated that question is never answered
        (librdkafka#4041), which froze every thread of the process. Messages polled here
        were never handed out: their offsets are not committed, so they are redelivered."""
        try:
            member.client.unsubscribe()
            deadline = time.monotonic() + LEAVE_TIMEOUT
            while member.assigned and time.monotonic() < deadline:
                member.client.consume(LEAVE_BATCH, LEAVE_POLL)
        except Exception as exc:  # best effort: what is done is committed below all the same
            logger.debug("queue %s: leaving the group before close: %s", member.queue,
                         _error_text(exc) if isinstance(exc, KafkaException) else exc)
        if member.assigned:
            logger.warning("queue %s: partitions %s still assigned %.0f s after unsubscribing; "
                           "closing anyway", member.queue, sorted(member.assigned), LEAVE_TIMEOUT)
        self._commit_now(member)

    def _part(self, member: _Member) -> Optional[str]:
        """Commit what the member has done and let go of its librdkafka consumer: a dynamic
        member leaves its group (``_leave``), a static one does not; what went wrong, if
        anything."""
        problem = None
        try:
            if self._member_name is not None:  # a static member does not leave its group
                _release_member(member, functools.partial(self._commit_now, member))
            else:
                _close_member(member, functools.partial(self._leave, member))
        except (KafkaException, RuntimeError) as exc:
            problem = f"{member.queue}: {_error_text(exc)}"
        self._broker.link.forget(member.name)
        return problem

    def close(self) -> None:
        """Commit what is done, then leave every group; unfinished deliveries will be redelivered."""
        if self._closed:
            return
        self._closing = True
        problems = []
        for member in self._members:
            problem = self._part(member)
            if problem:
                problems.append(problem)
        self._closed = True
        left = self._tracker.in_flight()
        for tp in self._tracker.partitions():
            self._tracker.drop(tp)
        with self._lock:
            self._generations.clear()
        if left:
            logger.info("Kafka consumer closed with %d deliveries unfinished; they will be redelivered", left)
        if problems:
            raise BrokerUnavailable("closing the Kafka consumer: " + "; ".join(problems))
