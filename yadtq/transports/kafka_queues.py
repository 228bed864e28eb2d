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
from ..exceptions import BrokerUnavailable
from .base import Delivery
from .kafka import (
    _LEADERSHIP_ERRORS,
    ADMIN_TIMEOUT,
    DLQ_TIMEOUT,
    DLQ_TOPIC,
    GROUP_PREFIX,
    HEADER_DLQ_REASON,
    HEADER_DLQ_SOURCE,
    TOPIC_PREFIX,
    KafkaBroker,
    KafkaToken,
    _admin,
    _error_text,
    _reader,
    group_for,
    topic_for,
)

logger = logging.getLogger(__name__)


def lag(broker: KafkaBroker, queue: str) -> Optional[dict[int, int]]:
    """Messages after the group's committed offset, per partition (``None``: no topic).

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
    return None  # not reached


def _lag_once(broker: KafkaBroker, queue: str) -> Optional[dict[int, int]]:
    topic, group = topic_for(queue), group_for(queue)
    admin = broker.admin
    try:
        partitions = broker._partitions(topic)
        if partitions is None:
            return None
        tps = [TopicPartition(topic, p) for p in partitions]
        spec = _admin.OffsetSpec
        high_f = admin.list_offsets({tp: spec.latest() for tp in tps}, request_timeout=ADMIN_TIMEOUT)
        low_f = admin.list_offsets({TopicPartition(topic, p): spec.earliest() for p in partitions},
                                   request_timeout=ADMIN_TIMEOUT)
        committed = _committed(broker, group, tps)
        high = {tp.partition: f.result(ADMIN_TIMEOUT).offset for tp, f in high_f.items()}
        low = {tp.partition: f.result(ADMIN_TIMEOUT).offset for tp, f in low_f.items()}
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read offsets of {topic}: {_error_text(exc)}") from exc
    # No commit yet, or a commit below the log start (purged): count from the log start.
    return {p: max(0, high[p] - max(low[p], committed.get(p, -1))) for p in partitions}


def _committed(broker: KafkaBroker, group: str, tps: list[Any]) -> dict[int, int]:
    """The group's committed offsets, read by a consumer that does not join the group.

    (Not ``AdminClient.list_consumer_group_offsets``: librdkafka 2.16 crashes the
    process when that request meets NOT_COORDINATOR, as it does after a
    coordinator move.)
    """
    probe = broker._client(RdConsumer, broker.config("consumer", **_reader(group)))
    try:
        return {tp.partition: tp.offset for tp in probe.committed(tps, timeout=ADMIN_TIMEOUT)}
    finally:
        probe.close()


def purge(broker: KafkaBroker, queue: str) -> int:
    """Delete every message of the queue's topic (Kafka DeleteRecords up to the end).

    Works while workers consume: their next fetch finds its position below the
    new log start and resets to it. Returns the group's lag before the purge.
    """
    broker.flush(ADMIN_TIMEOUT)  # what was published before the purge is purged too
    waiting = lag(broker, queue)
    if waiting is None:
        return 0
    topic = topic_for(queue)
    try:
        futures = broker.admin.delete_records([TopicPartition(topic, p, OFFSET_END) for p in waiting],
                                            request_timeout=ADMIN_TIMEOUT,
                                            operation_timeout=ADMIN_TIMEOUT)
        for future in futures.values():
            future.result(ADMIN_TIMEOUT + 5)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot purge {topic}: {_error_text(exc)}") from exc
    purged = sum(waiting.values())
    logger.info("purged queue %s: %d waiting messages dropped", queue, purged)
    return purged


def send_dead_letter(broker: KafkaBroker, delivery: Delivery, reason: str) -> None:
    """Produce a delivery to ``yadtq.dlq`` and wait until the cluster has it.

    Raises:
        BrokerUnavailable: not acknowledged within ``DLQ_TIMEOUT``; the caller
            must then not report the delivery done.
    """
    token = delivery.token
    source = (f"{token.topic}:{token.partition}:{token.offset}" if isinstance(token, KafkaToken)
              else TOPIC_PREFIX + delivery.queue)
    headers = [(k, v) for k, v in delivery.headers.items()
               if k not in (HEADER_DLQ_REASON, HEADER_DLQ_SOURCE)]
    headers += [(HEADER_DLQ_REASON, reason.encode("utf-8", "replace")),
                (HEADER_DLQ_SOURCE, source.encode())]
    # Low volume: one partition (0, even if the topic has more) keeps them in order.
    broker.ensure_topic(DLQ_TOPIC, partitions=1)
    producer = broker._dead_letter_producer()
    delivered = threading.Event()
    failure: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failure.append(f"{err.name()}: {err.str()}")
        delivered.set()

    try:
        producer.produce(DLQ_TOPIC, delivery.body, delivery.key, partition=0, headers=headers,
                         on_delivery=on_delivery)
        producer.flush(DLQ_TIMEOUT)
    except (KafkaException, BufferError) as exc:
        raise BrokerUnavailable(f"cannot dead-letter {source}: {_error_text(exc)}") from exc
    if not delivered.wait(1.0) or failure:
        raise BrokerUnavailable(f"dead letter from {source} not delivered: "
                                f"{failure[0] if failure else 'timed out'}")
    task_id = delivery.headers.get(HEADER_ID, b"?").decode("utf-8", "replace")
    task = delivery.headers.get(HEADER_TASK, b"?").decode("utf-8", "replace")
    logger.warning("task %s[%s] dead-lettered from %s: %s", task, task_id, source, reason)


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
        source = headers.pop(HEADER_DLQ_SOURCE, b"").decode("utf-8", "replace")
        topic = source.split(":", 1)[0]
        queue = topic[len(TOPIC_PREFIX):] if topic.startswith(TOPIC_PREFIX) else "dlq"
        result.append(Delivery(body=msg.value() or b"", queue=queue, headers=headers, key=msg.key(),
                               token=KafkaToken(DLQ_TOPIC, msg.partition(), msg.offset(), 0)))
    return result
