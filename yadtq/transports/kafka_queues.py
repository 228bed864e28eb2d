"""Kafka queue inspection and dead-lettering: lag, purge, sending to ``<namespace>.dlq``.

Functions of a :class:`~yadtq.transports.kafka.KafkaBroker` (whose methods call
them), kept apart from its publishing and configuration. Reading the dead-letter
topic back is ``kafka_dlq.py``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Consumer as RdConsumer

from ..envelope import HEADER_ID, HEADER_TASK
from ..exceptions import BrokerUnavailable, DeadLetterRefused
from .base import Delivery
from .kafka import KafkaBroker
from .kafka_config import ADMIN_TIMEOUT, DLQ_MAX_MESSAGE_BYTES, DLQ_TIMEOUT, _reader
from .kafka_errors import _LEADERSHIP_ERRORS, _error_text, unavailable
from .kafka_naming import (
    HEADER_DLQ_REASON,
    HEADER_DLQ_SOURCE,
    HEADER_DLQ_TRUNCATED,
    TP,
    KafkaToken,
    group_for,
    lane_topics,
    queue_of_topic,
)
from .kafka_topics import _admin

logger = logging.getLogger(__name__)


def lag_by_lane(broker: KafkaBroker, queue: str) -> dict[int, dict[int, int]]:
    """Messages after the group's committed offset, per priority lane and partition (lanes
    whose topic does not exist are left out: nothing was ever sent at their levels).

    Retries briefly on retriable errors (a new topic's leaders are still being elected).
    """
    for attempt in range(10):
        try:
            return _lag_once(broker, queue)
        except BrokerUnavailable as exc:
            cause = exc.__cause__
            error = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
            if attempt == 9 or not (isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in _LEADERSHIP_ERRORS)):
                raise
            time.sleep(0.2)
    return {}  # not reached


def _lag_once(broker: KafkaBroker, queue: str) -> dict[int, dict[int, int]]:
    topics, group = lane_topics(broker.naming, queue), group_for(broker.naming, queue)
    admin = broker.admin
    try:
        # All-topics metadata: asking for the lane topics by name could create them.
        meta = admin.list_topics(timeout=ADMIN_TIMEOUT).topics
        tps = [TopicPartition(topic, p) for topic in topics
               if topic in meta and meta[topic].error is None for p in sorted(meta[topic].partitions)]
        if not tps:
            return {}
        spec = _admin.OffsetSpec
        high_f = admin.list_offsets({tp: spec.latest() for tp in tps}, request_timeout=ADMIN_TIMEOUT)
        low_f = admin.list_offsets({TopicPartition(tp.topic, tp.partition): spec.earliest() for tp in tps},
                                   request_timeout=ADMIN_TIMEOUT)
        committed = _committed(broker, group, tps)
        high = {(tp.topic, tp.partition): f.result(ADMIN_TIMEOUT).offset for tp, f in high_f.items()}
        low = {(tp.topic, tp.partition): f.result(ADMIN_TIMEOUT).offset for tp, f in low_f.items()}
    except KafkaException as exc:
        raise unavailable(broker.servers, f"read offsets of {topics[0]}", exc) from exc
    # No commit yet, or a commit below the log start (purged): count from the log start.
    found: dict[int, dict[int, int]] = {}
    for tp in tps:
        key = (tp.topic, tp.partition)
        found.setdefault(topics.index(tp.topic), {})[tp.partition] = max(
            0, high[key] - max(low[key], committed.get(key, -1)))
    return found


def _committed(broker: KafkaBroker, group: str, tps: list[Any]) -> dict[TP, int]:
    """The group's committed offsets, read by a consumer that does not join the group.

    (Not ``AdminClient.list_consumer_group_offsets``: librdkafka 2.16 crashes the
    process when that request meets NOT_COORDINATOR, as it does after a
    coordinator move.)
    """
    probe = broker._client(RdConsumer, broker.config("consumer", **_reader(group)))
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in probe.committed(tps, timeout=ADMIN_TIMEOUT)}
    finally:
        probe.close()


#: Most queues whose lag one discovery reads (in parallel; the rest in later ones).
DISCOVERY_LIMIT = 16
#: Seconds a discovery's answer is kept.
DISCOVERY_INTERVAL = 10.0


class QueueDiscovery:
    """Which queues of the namespace hold tasks not yet done, for the monitor (so a queue
    no worker consumes shows): the topics ``<namespace>.*`` holding records, found with
    one metadata and one offsets request for the whole namespace, then the lag of those
    that may lag. A queue found with no lag is not read again until records are added
    to it (its groups' committed offsets only grow), so after the first answers a
    discovery reads the lag of only the queues that changed, at most
    ``DISCOVERY_LIMIT`` of them at once, and at most every ``DISCOVERY_INTERVAL``."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._taken = -DISCOVERY_INTERVAL
        self._found: list[str] = []
        #: queue -> its end offsets when its lag was last found to be 0
        self._idle: dict[str, tuple[int, ...]] = {}

    def queues(self) -> list[str]:
        """The queues holding tasks, by name, as of the latest discovery.

        Raises:
            BrokerUnavailable: the cluster did not answer.
        """
        with self._lock:
            if time.monotonic() - self._taken >= DISCOVERY_INTERVAL:
                self._found = self._discover()
                self._taken = time.monotonic()
            return list(self._found)

    def _discover(self) -> list[str]:
        broker, naming = self._broker, self._broker.naming
        admin = broker.admin
        try:
            topics = admin.list_topics(timeout=ADMIN_TIMEOUT).topics
            partitions: dict[str, list[Any]] = {}
            for name, meta in topics.items():
                queue = queue_of_topic(naming, name)  # every priority lane under its queue
                if queue is not None and meta.error is None and meta.partitions:
                    partitions.setdefault(queue, []).extend(
                        TopicPartition(name, p) for p in sorted(meta.partitions))
            tps = [tp for found in partitions.values() for tp in found]
            if not tps:
                return []
            spec = _admin.OffsetSpec
            high_f = admin.list_offsets({tp: spec.latest() for tp in tps}, request_timeout=ADMIN_TIMEOUT)
            low_f = admin.list_offsets(
                {TopicPartition(tp.topic, tp.partition): spec.earliest() for tp in tps},
                request_timeout=ADMIN_TIMEOUT)
            high = {(tp.topic, tp.partition): f.result(ADMIN_TIMEOUT).offset for tp, f in high_f.items()}
            low = {(tp.topic, tp.partition): f.result(ADMIN_TIMEOUT).offset for tp, f in low_f.items()}
        except KafkaException as exc:
            raise unavailable(broker.servers, f"list the queues of {naming.namespace}", exc) from exc
        ends = {queue: tuple(high.get((tp.topic, tp.partition), 0) for tp in found)
                for queue, found in partitions.items()}
        holding = [queue for queue, found in sorted(partitions.items())
                   if any(high.get((tp.topic, tp.partition), 0) > low.get((tp.topic, tp.partition), 0)
                          for tp in found)]
        unsure = [queue for queue in holding if self._idle.get(queue) != ends[queue]]
        probed = unsure[:DISCOVERY_LIMIT]
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(probed)))) as pool:
            lags = dict(zip(probed, pool.map(lambda queue: total_lag(broker, queue), probed)))
        for queue, waiting in lags.items():
            if waiting:
                self._idle.pop(queue, None)
            else:
                self._idle[queue] = ends[queue]
        # Not read this time (over the limit): as lagging as they were last time.
        kept = [queue for queue in unsure[DISCOVERY_LIMIT:] if queue in self._found]
        return sorted([queue for queue, waiting in lags.items() if waiting] + kept)


def total_lag(broker: KafkaBroker, queue: str) -> int:
    """The group's lag on every priority lane of ``queue``."""
    return sum(sum(parts.values()) for parts in lag_by_lane(broker, queue).values())


def purge(broker: KafkaBroker, queue: str) -> int:
    """Delete every message of the queue's topics, every priority lane (Kafka DeleteRecords
    up to the end).

    Works while workers consume: their next fetch finds its position below the
    new log start and resets to it. Returns the group's lag before the purge.
    """
    broker.flush(ADMIN_TIMEOUT)  # what was published before the purge is purged too
    waiting = lag_by_lane(broker, queue)
    if not waiting:
        return 0
    topics = lane_topics(broker.naming, queue)
    try:
        futures = broker.admin.delete_records(
            [TopicPartition(topics[lane], p, OFFSET_END) for lane, parts in waiting.items() for p in parts],
            request_timeout=ADMIN_TIMEOUT, operation_timeout=ADMIN_TIMEOUT)
        for future in futures.values():
            future.result(ADMIN_TIMEOUT + 5)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot purge {topics[0]}: {_error_text(exc)}") from exc
    purged = sum(sum(parts.values()) for parts in waiting.values())
    logger.info("purged queue %s: %d waiting messages dropped", queue, purged)
    return purged


#: Refusals for size: the broker's (topic ``max.message.bytes``) and librdkafka's own
#: (producer ``message.max.bytes``) share this code.
_SIZE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
#: Refusals that sending the same dead letter again cannot change (besides size, which
#: gets a truncated copy): the record, the topic's policy or the client's rights.
_PERMANENT_ERRORS = frozenset({
    KafkaError.INVALID_RECORD, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.POLICY_VIOLATION, KafkaError.TOPIC_EXCEPTION,
    KafkaError.INVALID_REQUIRED_ACKS, KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    KafkaError.INVALID_TIMESTAMP, KafkaError.UNSUPPORTED_COMPRESSION_TYPE, KafkaError._INVALID_ARG,
    KafkaError._BAD_MSG,
}) | _SIZE_ERRORS
#: A dead letter refused for its size is sent again with its body cut to this many bytes.
DLQ_TRUNCATED_BODY = 64 * 1024
#: ... and without original headers longer than this (a huge header can be the cause too).
_DLQ_TRUNCATED_HEADER = 1024


def send_dead_letter(broker: KafkaBroker, delivery: Delivery, reason: str) -> None:
    """Produce a delivery to the dead-letter topic (``<namespace>.dlq``) and wait until
    the cluster has it.

    The dead-letter topic is created with a ``max.message.bytes`` far above the task
    topics'. If the copy is still refused for its size (a task topic configured larger,
    or a dead-letter topic created by other means), a truncated copy goes instead: the first
    ``DLQ_TRUNCATED_BODY`` bytes, header ``yadtq-dlq-truncated`` with the original size,
    and the reason says so. A size refusal is permanent: it is never retried as is.

    Raises:
        DeadLetterRefused: refused for good (see ``_PERMANENT_ERRORS``).
        BrokerUnavailable: not acknowledged within ``DLQ_TIMEOUT``; the caller
            must then not report the delivery done.
    """
    token = delivery.token
    naming = broker.naming
    dlq_topic = naming.dlq_topic
    source = (f"{token.topic}:{token.partition}:{token.offset}" if isinstance(token, KafkaToken)
              else naming.topic(delivery.queue))
    original = [(k, v) for k, v in delivery.headers.items()
                if k not in (HEADER_DLQ_REASON, HEADER_DLQ_SOURCE, HEADER_DLQ_TRUNCATED)]
    # Low volume: one partition (0, even if the topic has more) keeps them in order.
    broker.ensure_topic(dlq_topic, partitions=1,
                        config={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
    trailer = (HEADER_DLQ_SOURCE, source.encode())
    error = _produce_dead_letter(broker, delivery.body, delivery.key,
                                 [*original, (HEADER_DLQ_REASON, reason.encode("utf-8", "replace")), trailer])
    if error is not None and error[0] in _SIZE_ERRORS:
        size = len(delivery.body)
        reason = (f"{reason} [truncated: the {size}-byte message was refused by {dlq_topic} "
                  f"({error[1]}); the first {min(size, DLQ_TRUNCATED_BODY)} bytes are kept]")
        logger.warning("dead letter from %s refused for its size (%d bytes): sending a truncated copy",
                       source, size)
        kept = [(k, v) for k, v in original if len(v) <= _DLQ_TRUNCATED_HEADER]
        key = (delivery.key or b"")[:_DLQ_TRUNCATED_HEADER] or None
        error = _produce_dead_letter(
            broker, delivery.body[:DLQ_TRUNCATED_BODY], key,
            [*kept, (HEADER_DLQ_REASON, reason.encode("utf-8", "replace")),
             (HEADER_DLQ_TRUNCATED, str(size).encode()), trailer])
    if error is not None:
        if error[0] in _PERMANENT_ERRORS:
            raise DeadLetterRefused(
                f"{broker.naming.dlq_topic} refused the dead letter from {source}: {error[1]}")
        raise BrokerUnavailable(f"dead letter from {source} not delivered: {error[1]}")
    task_id = delivery.headers.get(HEADER_ID, b"?").decode("utf-8", "replace")
    task = delivery.headers.get(HEADER_TASK, b"?").decode("utf-8", "replace")
    logger.warning("task %s[%s] dead-lettered from %s: %s", task, task_id, source, reason)


def _produce_dead_letter(broker: KafkaBroker, body: bytes, key: Optional[bytes],
                         headers: list[tuple[str, bytes]]) -> Optional[tuple[int, str]]:
    """Produce one message to the dead-letter topic and wait for its delivery report.

    Returns ``None`` once the cluster has it, else the error's code and text (a refusal,
    local or by the broker, or ``None`` as code when it timed out).
    """
    producer = broker._dead_letter_producer()
    delivered = threading.Event()
    failure: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failure.append(err)
        delivered.set()

    try:
        producer.produce(broker.naming.dlq_topic, body, key, partition=0, headers=headers,
                         on_delivery=on_delivery)
        producer.flush(DLQ_TIMEOUT)
    except BufferError as exc:
        return (-1, str(exc))
    except KafkaException as exc:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        return (err.code() if err is not None else -1, _error_text(exc))
    if not delivered.wait(1.0):
        return (-1, "timed out")
    if failure:
        return (failure[0].code(), f"{failure[0].name()}: {failure[0].str()}")
    return None
