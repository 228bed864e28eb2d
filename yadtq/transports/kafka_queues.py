"""Kafka queue inspection and dead letters: lag, purge, the ``yadtq.dlq`` topic.

Functions of a :class:`~yadtq.transports.kafka.KafkaBroker` (whose methods call
them), kept apart from its publishing and configuration.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Consumer as RdConsumer

from ..envelope import HEADER_ID, HEADER_TASK
from ..exceptions import BrokerUnavailable, DeadLetterRefused
from .base import Delivery
from .kafka import (
    _LEADERSHIP_ERRORS,
    ADMIN_TIMEOUT,
    DLQ_MAX_MESSAGE_BYTES,
    DLQ_TIMEOUT,
    DLQ_TOPIC,
    GROUP_PREFIX,
    HEADER_DLQ_REASON,
    HEADER_DLQ_SOURCE,
    HEADER_DLQ_TRUNCATED,
    TOPIC_PREFIX,
    TP,
    KafkaBroker,
    KafkaToken,
    _admin,
    _error_text,
    _reader,
    group_for,
    lane_topics,
    queue_of_topic,
)

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
    topics, group = lane_topics(queue), group_for(queue)
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
        raise BrokerUnavailable(f"cannot read offsets of {topics[0]}: {_error_text(exc)}") from exc
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
    topics = lane_topics(queue)
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
    """Produce a delivery to ``yadtq.dlq`` and wait until the cluster has it.

    ``yadtq.dlq`` is created with a ``max.message.bytes`` far above the task topics'.
    If the copy is still refused for its size (a task topic configured larger, or a
    ``yadtq.dlq`` created by other means), a truncated copy goes instead: the first
    ``DLQ_TRUNCATED_BODY`` bytes, header ``yadtq-dlq-truncated`` with the original size,
    and the reason says so. A size refusal is permanent: it is never retried as is.

    Raises:
        DeadLetterRefused: refused for good (see ``_PERMANENT_ERRORS``).
        BrokerUnavailable: not acknowledged within ``DLQ_TIMEOUT``; the caller
            must then not report the delivery done.
    """
    token = delivery.token
    source = (f"{token.topic}:{token.partition}:{token.offset}" if isinstance(token, KafkaToken)
              else TOPIC_PREFIX + delivery.queue)
    original = [(k, v) for k, v in delivery.headers.items()
                if k not in (HEADER_DLQ_REASON, HEADER_DLQ_SOURCE, HEADER_DLQ_TRUNCATED)]
    # Low volume: one partition (0, even if the topic has more) keeps them in order.
    broker.ensure_topic(DLQ_TOPIC, partitions=1,
                        config={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
    trailer = (HEADER_DLQ_SOURCE, source.encode())
    error = _produce_dead_letter(broker, delivery.body, delivery.key,
                                 [*original, (HEADER_DLQ_REASON, reason.encode("utf-8", "replace")), trailer])
    if error is not None and error[0] in _SIZE_ERRORS:
        size = len(delivery.body)
        reason = (f"{reason} [truncated: the {size}-byte message was refused by {DLQ_TOPIC} "
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
            raise DeadLetterRefused(f"{DLQ_TOPIC} refused the dead letter from {source}: {error[1]}")
        raise BrokerUnavailable(f"dead letter from {source} not delivered: {error[1]}")
    task_id = delivery.headers.get(HEADER_ID, b"?").decode("utf-8", "replace")
    task = delivery.headers.get(HEADER_TASK, b"?").decode("utf-8", "replace")
    logger.warning("task %s[%s] dead-lettered from %s: %s", task, task_id, source, reason)


def _produce_dead_letter(broker: KafkaBroker, body: bytes, key: Optional[bytes],
                         headers: list[tuple[str, bytes]]) -> Optional[tuple[int, str]]:
    """Produce one message to ``yadtq.dlq`` and wait for its delivery report.

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
        producer.produce(DLQ_TOPIC, body, key, partition=0, headers=headers, on_delivery=on_delivery)
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


def read_dead_letters(broker: KafkaBroker, limit: int = 100) -> list[Delivery]:
    """The newest ``limit`` messages of ``yadtq.dlq``, oldest first, as they were delivered
    (queue, key, original headers). Reads the topic's tail; commits nothing."""
    if limit <= 0:
        return []
    try:
        partitions = broker._partitions(DLQ_TOPIC)
        if not partitions:
            return []
        reader = broker._client(RdConsumer, broker.config(
            "consumer", **_reader(GROUP_PREFIX + "dlq-reader"),
            error_cb=lambda err: logger.debug("dead-letter reader: %s", err.str())))
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read {DLQ_TOPIC}: {_error_text(exc)}") from exc
    found: list[Any] = []
    try:
        ends: dict[int, int] = {}
        starts = []
        for p in partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(DLQ_TOPIC, p), ADMIN_TIMEOUT)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(DLQ_TOPIC, p, max(low, high - limit)))
        reader.assign(starts)
        deadline = time.monotonic() + ADMIN_TIMEOUT
        while ends and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.2):
                if msg.error() is None:
                    found.append(msg)
                    if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                        ends.pop(msg.partition(), None)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read {DLQ_TOPIC}: {_error_text(exc)}") from exc
    finally:
        reader.close()
    found.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
    result = []
    for msg in found[-limit:]:
        headers = {k: bytes(v or b"") for k, v in msg.headers() or ()}
        headers.pop(HEADER_DLQ_REASON, None)
        headers.pop(HEADER_DLQ_TRUNCATED, None)
        source = headers.pop(HEADER_DLQ_SOURCE, b"").decode("utf-8", "replace")
        topic = source.split(":", 1)[0]
        queue = queue_of_topic(topic) or "dlq"
        result.append(Delivery(body=msg.value() or b"", queue=queue, headers=headers, key=msg.key(),
                               token=KafkaToken(DLQ_TOPIC, msg.partition(), msg.offset(), 0)))
    return result
