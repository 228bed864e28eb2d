"""Kafka topic management through the admin client: creating a queue's topics on first
use (and waiting until the leaders of a topic created here take writes) and listing a
topic's partitions.

Functions of a :class:`~yadtq.transports.kafka.KafkaBroker` (its ``ensure_topic``
and ``_partitions`` call them), kept apart from its publishing and configuration.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import TYPE_CHECKING, Any, Optional

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from ..exceptions import BrokerUnavailable
from .kafka_config import ADMIN_TIMEOUT
from .kafka_errors import unavailable

if TYPE_CHECKING:
    from .kafka import KafkaBroker

logger = logging.getLogger(__name__)

# NewTopic and OffsetSpec are neither explicitly exported nor typed in every
# confluent-kafka release; reach them untyped so mypy --strict holds across versions.
_admin: Any = importlib.import_module("confluent_kafka.admin")


def ensure_topic(broker: KafkaBroker, topic: str, partitions: Optional[int] = None,
                 config: Optional[dict[str, str]] = None) -> None:
    """Create ``topic`` unless it exists (``partitions``, default ``settings.partitions``;
    topic ``config`` such as ``max.message.bytes``); a topic created here is waited for
    until its partitions' leaders take writes (:func:`topic_ready`). Cached per broker.

    A topic whose metadata already lists a leader for every partition is used at once:
    one created a moment ago elsewhere may refuse the first batches, which the
    producer then sends again (one request in flight: ``kafka_config.PRODUCER_IN_FLIGHT``).
    """
    if topic in broker._topics:
        return
    admin = broker.admin
    count = partitions or broker.settings.partitions
    try:
        if not topic_ready(broker, topic, wait=0.0):
            future = admin.create_topics(
                [_admin.NewTopic(topic, num_partitions=count,
                                 replication_factor=broker.settings.replication_factor,
                                 config=dict(config or {}))],
                request_timeout=ADMIN_TIMEOUT)[topic]
            try:
                future.result(timeout=ADMIN_TIMEOUT + 5)
                logger.info("created topic %s (%d partitions)", topic, count)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            if not topic_ready(broker, topic, wait=ADMIN_TIMEOUT, writable=True):
                raise BrokerUnavailable(f"topic {topic} has no leader taking writes for every "
                                        f"partition after {ADMIN_TIMEOUT:.0f} s")
    except KafkaException as exc:
        raise unavailable(broker.servers, f"create topic {topic}", exc) from exc
    with broker._lock:
        broker._topics.add(topic)


def topic_ready(broker: KafkaBroker, topic: str, wait: float, writable: bool = False) -> bool:
    """Whether the cluster's metadata shows ``topic`` with a leader for every partition
    and, if ``writable``, each leader answers for its partition as leader
    (:func:`_leaders_serve`); asking again for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        # All-topics metadata: asking for one topic could auto-create it.
        meta = broker.admin.list_topics(timeout=ADMIN_TIMEOUT).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions and all(
                p.leader >= 0 for p in meta.partitions.values()) and (
                    not writable or _leaders_serve(broker, topic, sorted(meta.partitions))):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _leaders_serve(broker: KafkaBroker, topic: str, partitions: list[int]) -> bool:
    """Whether the leader of each of ``topic``'s ``partitions`` answers a ListOffsets
    request for it, which only a partition's leader does.

    A broker lists itself in the metadata as a new partition's leader a moment before
    its replica takes the leader's role. A produce in that moment fails with
    NOT_LEADER_OR_FOLLOWER, and librdkafka's idempotent producer, seeing a later batch
    of the same partition succeed (the broker takes any sequence number as a producer's
    first on a partition), counts the failed batch as written: its messages are lost
    without a delivery error (2-4 messages in about one new topic of eight, sent 1,000
    tasks at once; docs/semantics.md). So no task is sent to a topic created here before
    this holds.
    """
    specs = {TopicPartition(topic, p): _admin.OffsetSpec.latest() for p in partitions}
    try:
        futures = broker.admin.list_offsets(specs, request_timeout=ADMIN_TIMEOUT)
        for future in futures.values():
            future.result(timeout=ADMIN_TIMEOUT + 5)
    except KafkaException as exc:
        logger.debug("topic %s: a partition leader does not serve yet (%s)", topic, exc)
        return False
    return True


def partitions(broker: KafkaBroker, topic: str) -> Optional[list[int]]:
    """The partitions of ``topic``, in order; ``None`` when the cluster does not know it."""
    meta = broker.admin.list_topics(timeout=ADMIN_TIMEOUT).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    return sorted(meta.partitions)
