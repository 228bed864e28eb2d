"""Names on a Kafka cluster: the topic of each queue and priority lane, the consumer
group of each queue, the headers of a dead letter, and where a delivery came from
(:class:`KafkaToken`).

Every name comes from the settings' :class:`~yadtq.namespace.Naming`; see
``kafka.py``'s docstring for the layout on the cluster.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from ..exceptions import ConfigurationError
from ..namespace import DLQ_NAME, Naming
from ..priority import LANES

#: Headers added to a dead-lettered message.
HEADER_DLQ_REASON = "yadtq-dlq-reason"
HEADER_DLQ_SOURCE = "yadtq-dlq-source"  # "topic:partition:offset"
#: On a dead letter too large for the dead-letter topic: the original body's size in bytes.
HEADER_DLQ_TRUNCATED = "yadtq-dlq-truncated"

_VALID_QUEUE = re.compile(r"^[A-Za-z0-9._-]+$")
#: Queue names ending like a lane topic are refused: their topic would be another queue's lane.
_LANE_LIKE = re.compile(r"\.prio[0-9]+$")
#: Topic suffix of each priority lane (index: lane of ``yadtq.priority.LANES``).
LANE_SUFFIXES: tuple[str, ...] = tuple("" if lane == 0 else f".prio{low}"
                                       for lane, (low, _) in enumerate(LANES))


TP = tuple[str, int]


class KafkaToken(NamedTuple):
    """Where a delivery came from, and under which assignment of its partition."""

    topic: str
    partition: int
    offset: int
    generation: int


#: Longest Kafka topic name.
MAX_TOPIC_LENGTH = 249


def topic_for(naming: Naming, queue: str) -> str:
    """The topic carrying ``queue`` (its priority lane 0) in ``naming``'s namespace
    (``<namespace>.<queue>``).

    Raises:
        ConfigurationError: a queue name Kafka cannot carry (or the dead-letter topic's).
    """
    topic = naming.topic(queue)
    if (not _VALID_QUEUE.match(queue) or len(topic) + len(LANE_SUFFIXES[-1]) > MAX_TOPIC_LENGTH
            or queue in (DLQ_NAME, ".", "..")):
        raise ConfigurationError(f"invalid queue name for Kafka: {queue!r}")
    if _LANE_LIKE.search(queue):
        raise ConfigurationError(f"invalid queue name for Kafka: {queue!r} (names ending in "
                                 "'.prio<digits>' are reserved for priority lanes)")
    return topic


def lane_topic(naming: Naming, queue: str, lane: int) -> str:
    """The topic carrying ``queue``'s priority lane ``lane`` (lane 0: the queue's topic)."""
    return topic_for(naming, queue) + LANE_SUFFIXES[lane]


def lane_topics(naming: Naming, queue: str) -> list[str]:
    """Every lane topic of ``queue``, lowest lane first."""
    base = topic_for(naming, queue)
    return [base + suffix for suffix in LANE_SUFFIXES]


def queue_of_topic(naming: Naming, topic: str) -> Optional[str]:
    """The queue a task topic (any lane) of ``naming``'s namespace carries; ``None`` for
    other topics."""
    name = naming.queue_of(topic)
    if name is None:
        return None
    for suffix in LANE_SUFFIXES[1:]:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def group_for(naming: Naming, queue: str) -> str:
    """The consumer group serving ``queue`` in ``naming``'s namespace."""
    return naming.group(queue)
