"""Group state of a worker's Kafka consumer: commits, rebalance callbacks, and what any
thread may ask (``done``, ``owns``...).

:class:`GroupState` is a base of ``kafka_consumer.KafkaConsumer``, which owns the
attributes declared here; see ``kafka.py``'s docstring for the guarantees kept.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from .base import Delivery, DrainCallback
from .kafka_config import COMMIT_INTERVAL
from .kafka_errors import _error_text
from .kafka_member import _Member, _named
from .kafka_naming import TP, KafkaToken
from .offsets import OffsetTracker

if TYPE_CHECKING:
    from .kafka import KafkaBroker

logger = logging.getLogger(__name__)

#: Commit errors that only mean "the group coordinator is moving or unreachable", or "the
#: group is rebalancing" (the commit raced a rebalance; what it held is committed by the
#: partition's drain or redelivered to its next owner).
_COORDINATOR_ERRORS = frozenset({KafkaError.NOT_COORDINATOR, KafkaError._WAIT_COORD,
                                 KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TRANSPORT,
                                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                                 KafkaError.REBALANCE_IN_PROGRESS, KafkaError.UNKNOWN_MEMBER_ID})

#: Assignment generations, unique within the process.
_generations = itertools.count(1)


class GroupState:
    """Commits, rebalance callbacks and the thread-safe queries of ``KafkaConsumer``."""

    _broker: KafkaBroker
    _on_drain: Optional[DrainCallback]
    _drain_timeout: float
    _tracker: OffsetTracker
    #: Guards ``_generations`` together with the tracker updates that depend on it.
    _lock: threading.Lock
    _generations: dict[TP, int]
    #: Partitions whose revocation is being drained now (``revoking``; no longer ``owns``).
    _revoking: frozenset[TP]
    _members: list[_Member]
    _last_commit: float
    _closing: bool
    #: Partitions revoked or lost so far (for health and tests).
    revocations: int

    # ------------------------------------------------------------------ commits (owner thread)
    def _commit_due(self) -> None:
        now = time.monotonic()
        if now - self._last_commit < COMMIT_INTERVAL:
            return
        self._last_commit = now
        self._broker.serve_callbacks()
        positions = self._tracker.committable()
        if not positions:
            return
        self._tracker.mark_committed(positions)
        logger.debug("committing %s", positions)
        for member in self._members:
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items() if t in member.lane]
            if not offsets:
                continue
            try:
                member.client.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                logger.warning("commit of %s failed: %s", member.queue, _error_text(exc))
                self._tracker.forget_committed((o.topic, o.partition) for o in offsets)

    def _commit_now(self, member: _Member, tps: Optional[set[TP]] = None) -> None:
        """Commit synchronously what is committable (of ``tps``) for one member."""
        positions = self._tracker.committable(member.assigned if tps is None else tps)
        if not positions:
            return
        self._tracker.mark_committed(positions)
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            # On the calling thread, never another: a sync commit made while the owner
            # thread serves a rebalance callback is not answered (seen with librdkafka 2.16).
            result = member.client.commit(offsets=offsets, asynchronous=False)
            failed = [tp for tp in result or () if tp.error is not None]
            if failed:
                raise KafkaException(failed[0].error)
            logger.debug("committed %s", positions)
        except KafkaException as exc:
            logger.warning("commit of %s failed: %s; those tasks may be redelivered", member.queue,
                           _error_text(exc))
            self._tracker.forget_committed(positions)

    def _on_commit(self, err: Any, partitions: Any) -> None:
        if err is not None and err.code() == KafkaError._NO_OFFSET:
            return
        failed = [(p.topic, p.partition) for p in partitions or () if err is not None or p.error is not None]
        if failed:
            error = err if err is not None else next(p.error for p in partitions if p.error is not None)
            # Retried with the next commit: while the coordinator moves or the link is down
            # that is expected, and said once by the link (kafka_link.py), not per commit.
            expected = error.retriable() or error.code() in _COORDINATOR_ERRORS or not self._broker.link.up
            logger.log(logging.INFO if expected else logging.WARNING, "commit failed for %s: %s",
                       failed, error.str())
            self._tracker.forget_committed(failed)

    # ------------------------------------------------------------------ rebalance (owner thread)
    def _on_assign(self, member: _Member, partitions: Any) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        with self._lock:
            for tp in tps:
                self._generations[tp] = next(_generations)
        member.assigned.update(tps)
        member.update_lanes()
        self._broker.link.connected()  # an assignment came from a broker: the link was up
        logger.info("queue %s: assigned partitions %s", member.queue, _named(member, tps))

    def _on_revoke(self, member: _Member, partitions: Any) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        try:
            member.discard_buffered(tps)
            running = sum(self._tracker.in_flight(tp) for tp in tps)
            if running and self._on_drain is not None and not self._closing:
                logger.info("queue %s: partitions %s revoked; draining %d in-flight deliveries (up to "
                            "%.0f s)", member.queue, sorted(p for _, p in tps), running, self._drain_timeout)
                with self._lock:  # their deliveries are no longer ours to keep, only to finish
                    self._revoking = frozenset(tps)
                self._on_drain(self._drain_timeout)
            self._commit_now(member, tps)
        except Exception:
            logger.exception("queue %s: handling the revocation of %s failed", member.queue, sorted(tps))
        finally:
            with self._lock:
                self._revoking = frozenset()
            self._release(member, tps, "revoked")

    def _on_lost(self, member: _Member, partitions: Any) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        member.discard_buffered(tps)
        self._release(member, tps, "lost")  # no commit: another member may own them already

    def _release(self, member: _Member, tps: set[TP], how: str) -> None:
        dropped = 0
        with self._lock:
            for tp in tps:
                self._generations.pop(tp, None)
                dropped += self._tracker.drop(tp)
        member.assigned.difference_update(tps)
        member.update_lanes()
        paused = tps & member.paused
        if paused:
            member.paused.difference_update(paused)
        if paused and member.client is not None:  # None: let go of already (static, rebuilt)
            try:  # a partition assigned again later must not come back paused
                member.client.resume([TopicPartition(*tp) for tp in paused])
            except (KafkaException, RuntimeError) as exc:
                logger.debug("resume of released partitions failed: %s", _error_text(exc))
        self.revocations += len(tps)
        # Lost while the link is down is the outage's consequence, reported once by the link.
        log = logger.warning if (dropped or how == "lost") and self._broker.link.up else logger.info
        log("queue %s: partitions %s %s%s", member.queue, _named(member, tps), how,
            f"; {dropped} unfinished deliveries will be redelivered" if dropped else "")

    # ------------------------------------------------------------------ any thread
    def done(self, deliveries: Sequence[Delivery]) -> None:
        """Mark deliveries finished; their offsets are committed by the owner thread soon after.

        A delivery from an earlier assignment of its partition is ignored: that
        partition was committed at revocation, and anything unfinished then is
        redelivered by its next owner.
        """
        stale = 0
        with self._lock:
            generations, tracker = self._generations, self._tracker
            for delivery in deliveries:
                token = delivery.token
                if not isinstance(token, KafkaToken):
                    raise TypeError(f"not a Kafka delivery: {delivery!r}")
                tp = (token.topic, token.partition)
                if generations.get(tp) != token.generation:
                    stale += 1
                    continue
                tracker.finished(tp, token.offset)
        if stale:
            logger.debug("ignored %d deliveries done after their partition was revoked", stale)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Copy the delivery to ``yadtq.dlq`` (with reason and source headers), then mark it done.

        Marked done only once the dead letter is acknowledged, so it is never lost.
        """
        self._broker.send_dead_letter(delivery, reason)
        self.done([delivery])

    def in_flight(self) -> int:
        return self._tracker.in_flight()

    def owns(self, delivery: Delivery) -> bool:
        """Whether the delivery's partition is still assigned under the same generation."""
        token = delivery.token
        if not isinstance(token, KafkaToken):
            return False
        tp = (token.topic, token.partition)
        with self._lock:
            return self._generations.get(tp) == token.generation and tp not in self._revoking

    def revoking(self, delivery: Delivery) -> bool:
        """Whether the delivery's partition is being revoked and drained right now."""
        token = delivery.token
        if not isinstance(token, KafkaToken):
            return False
        tp = (token.topic, token.partition)
        with self._lock:
            return tp in self._revoking and self._generations.get(tp) == token.generation

    def assignment(self) -> set[TP]:
        """The (topic, partition) pairs this consumer owns now."""
        with self._lock:
            return set(self._generations)
