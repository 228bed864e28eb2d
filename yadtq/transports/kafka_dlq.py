"""Reading Kafka's dead-letter topic ``<namespace>.dlq`` back: list, requeue, purge.

One reader, :func:`scan`, serves every use: the operator commands (``yadtq dlq``,
the dashboard) and :meth:`KafkaBroker.dead_letters` (tests and the monitor).
Writing to the topic is ``kafka_queues.send_dead_letter``'s.

Kafka cannot delete one record from the middle of a topic, so requeueing some dead
letters appends a *marker* record to the topic (empty body, header
``yadtq-dlq-requeued`` naming the requeued ids) and readers hide what the markers
name. Requeueing all of them, and purging, delete the records read so far
(DeleteRecords up to the offsets read), markers included. A dead letter is
published to its queue before its marker is written: a crash in between leaves it
in both places, never in neither (and a task that runs twice under one id is
still run once: its second delivery is skipped by the claim).

A dead letter's id is ``<partition>-<offset>`` in the dead-letter topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaException, TopicPartition

from ..exceptions import BrokerUnavailable
from .base import DeadLetter, Delivery
from .kafka_config import ADMIN_TIMEOUT, DLQ_TIMEOUT, _reader
from .kafka_errors import _error_text
from .kafka_naming import (
    HEADER_DLQ_REASON,
    HEADER_DLQ_SOURCE,
    HEADER_DLQ_TRUNCATED,
    KafkaToken,
    queue_of_topic,
)

if TYPE_CHECKING:
    from .kafka import KafkaBroker

logger = logging.getLogger(__name__)

HEADER_DLQ_REQUEUED = "yadtq-dlq-requeued"
#: Most records read back from each partition of the dead-letter topic.
SCAN_LIMIT = 10_000


class _Scan:
    """What the dead-letter topic holds: visible letters (oldest first) and where each
    partition ended when it was read."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.ends: dict[int, int] = {}


def scan(broker: KafkaBroker, tail: int = SCAN_LIMIT) -> _Scan:
    """Read the dead-letter topic's tail: at most ``tail`` records a partition, requeue
    markers included (a marker always follows the letters it hides, so a tail holds
    every marker about its letters).

    Raises:
        BrokerUnavailable: the cluster did not answer.
    """
    result = _Scan()
    naming = broker.naming
    topic = naming.dlq_topic
    try:
        partitions = broker._partitions(topic)
        if not partitions or tail <= 0:
            return result
        reader = broker._client(RdConsumer, broker.config(
            "consumer", **_reader(naming.group("dlq-reader")),
            error_cb=lambda err: logger.debug("dead-letter reader: %s", err.str())))
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read {topic}: {_error_text(exc)}") from exc
    found: list[Any] = []
    try:
        pending: dict[int, int] = {}
        starts = []
        for p in partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, p), ADMIN_TIMEOUT)
            result.ends[p] = high
            if high > low:
                pending[p] = high
                starts.append(TopicPartition(topic, p, max(low, high - tail)))
        if starts:
            reader.assign(starts)
        deadline = time.monotonic() + ADMIN_TIMEOUT
        while pending and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.2):
                if msg.error() is None and msg.offset() < result.ends.get(msg.partition(), 0):
                    found.append(msg)
                    if msg.offset() + 1 >= pending.get(msg.partition(), 0):
                        pending.pop(msg.partition(), None)
        if pending:
            raise BrokerUnavailable(f"reading {topic} timed out")
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read {topic}: {_error_text(exc)}") from exc
    finally:
        reader.close()
    hidden: set[str] = set()
    letters = []
    for msg in sorted(found, key=lambda m: (m.timestamp()[1], m.partition(), m.offset())):
        headers = {k: bytes(v or b"") for k, v in msg.headers() or ()}
        marker = headers.get(HEADER_DLQ_REQUEUED)
        if marker is not None:
            hidden.update(marker.decode().split(","))
            continue
        reason = headers.pop(HEADER_DLQ_REASON, b"").decode("utf-8", "replace")
        source = headers.pop(HEADER_DLQ_SOURCE, b"").decode("utf-8", "replace")
        headers.pop(HEADER_DLQ_TRUNCATED, None)
        queue = queue_of_topic(naming, source.split(":", 1)[0]) or "dlq"
        letters.append(DeadLetter(f"{msg.partition()}-{msg.offset()}", queue, reason,
                                  msg.timestamp()[1] / 1000.0, msg.value() or b"", headers, msg.key()))
    result.letters = [d for d in letters if d.id not in hidden]
    return result


def read_deliveries(broker: KafkaBroker, limit: int) -> list[Delivery]:
    """The newest ``limit`` dead letters (within the last ``limit`` records of each
    partition), oldest first, as they were delivered (queue, key, original headers)."""
    if limit <= 0:
        return []
    topic = broker.naming.dlq_topic
    result = []
    for letter in scan(broker, tail=limit).letters[-limit:]:
        partition, _, offset = letter.id.partition("-")
        result.append(Delivery(body=letter.body, queue=letter.queue, headers=dict(letter.headers),
                               key=letter.key, token=KafkaToken(topic, int(partition), int(offset), 0)))
    return result


def requeue(broker: KafkaBroker, ids: Optional[Sequence[str]]) -> list[DeadLetter]:
    """Publish the chosen dead letters to their queues, then hide or delete them."""
    found = scan(broker)
    wanted = None if ids is None else set(ids)
    chosen = [d for d in found.letters if wanted is None or d.id in wanted]
    if not chosen:
        return []
    broker.publish([d.message() for d in chosen])
    left = broker.flush(DLQ_TIMEOUT)
    if left:
        raise BrokerUnavailable(f"{left} requeued dead letters not confirmed by Kafka; "
                                "they stay in the dead-letter queue")
    if wanted is None:
        _delete_read(broker, found)
    else:
        _mark(broker, [d.id for d in chosen])
    logger.warning("requeued %d dead letters", len(chosen))
    return chosen


def purge(broker: KafkaBroker) -> int:
    """Delete every dead letter read (markers included); returns how many letters."""
    found = scan(broker)
    _delete_read(broker, found)
    return len(found.letters)


def _delete_read(broker: KafkaBroker, found: _Scan) -> None:
    topic = broker.naming.dlq_topic
    targets = [TopicPartition(topic, p, end) for p, end in found.ends.items() if end > 0]
    if not targets:
        return
    try:
        futures = broker.admin.delete_records(targets, request_timeout=ADMIN_TIMEOUT,
                                              operation_timeout=ADMIN_TIMEOUT)
        for future in futures.values():
            future.result(ADMIN_TIMEOUT + 5)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot delete records of {topic}: {_error_text(exc)}") from exc


def _mark(broker: KafkaBroker, ids: list[str]) -> None:
    producer = broker._dead_letter_producer()
    delivered = threading.Event()
    failure: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failure.append(f"{err.name()}: {err.str()}")
        delivered.set()

    try:
        producer.produce(broker.naming.dlq_topic, b"", None, partition=0,
                         headers=[(HEADER_DLQ_REQUEUED, ",".join(ids).encode())], on_delivery=on_delivery)
        producer.flush(DLQ_TIMEOUT)
    except (KafkaException, BufferError) as exc:
        raise BrokerUnavailable(f"cannot mark requeued dead letters: {_error_text(exc)}") from exc
    if not delivered.wait(1.0) or failure:
        raise BrokerUnavailable("requeued dead letters were published but not marked as requeued "
                                f"({failure[0] if failure else 'timed out'}): they are listed still")
