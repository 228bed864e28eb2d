"""``kafka://host:port[,host:port]``: the production broker, on confluent-kafka (librdkafka).

Layout on the cluster:

- one topic per queue, ``<namespace>.<queue>`` (``yadtq.<queue>`` by default; the
  names come from the settings' :class:`~yadtq.namespace.Naming`, ``broker.naming``),
  created on first use with ``settings.partitions`` partitions; dead letters go to
  ``<namespace>.dlq``;
- priority lanes: tasks of priority 4-6 and 7-9 go to the queue's lane topics
  ``<namespace>.<queue>.prio4`` and ``<namespace>.<queue>.prio7``
  (:func:`~yadtq.transports.kafka_naming.lane_topic`), created on first use like queue
  topics. The queue's group subscribes to every lane;
  librdkafka finds a lane topic created later at its next metadata refresh
  (``LANE_DISCOVERY_MS``). ``kafka_consumer.py`` hands out the highest lane first;
- one consumer group per queue, ``<namespace>.<queue>``. A worker serving several
  queues holds one librdkafka consumer per queue inside its :class:`KafkaConsumer`
  (a librdkafka consumer belongs to exactly one group). So a queue's partitions
  are balanced among exactly the workers serving that queue, a rebalance of one
  queue never revokes another queue's partitions, and ``depth``/``purge`` of a
  queue concern one group and one topic. The price is one client per queue in
  a multi-queue worker; the common single-queue worker has one.

Delivery semantics (DESIGN.md §4), all enforced here and in ``offsets.py``:

- Acks-late: offsets are never stored automatically; the consumer commits only
  what the worker reported :meth:`KafkaConsumer.done` (after the outcome is
  stored), so a worker killed at any moment loses no task.
- No head-of-line blocking: later messages of a partition are handed out while
  an earlier one runs; the committed offset is the highest below which every
  handed-out message is done (:class:`~yadtq.transports.offsets.OffsetTracker`).
  A partition is paused while its buffered plus in-flight messages reach the
  in-flight bound (``broker_options["kafka_max_in_flight"]``, default 1000).
- One thread owns the librdkafka consumers (poll, commit, pause, close):
  ``done`` from any thread only updates the tracker; the owner commits what is
  committable asynchronously at most every ``COMMIT_INTERVAL`` seconds, and
  synchronously on revocation and close.
- A partition being revoked is drained first (the worker's ``on_drain``
  callback finishes what it can), then its finished offsets are committed.
  Every delivery carries its assignment generation, so a late ``done`` for a
  partition lost and re-acquired meanwhile is ignored.
- A fetch that raises may have taken messages that confluent-kafka then
  destroyed (a callback served inside it raised): the member hands out nothing
  more, commits what is done, leaves and rejoins, so its partitions restart from
  the committed offsets instead of past the lost messages.

Modules: this one configures clients and holds the broker together;
``kafka_producer.py`` publishes, ``kafka_consumer.py`` consumes (``kafka_group.py``
commits and serves rebalances, ``kafka_member.py`` is one librdkafka consumer), ``kafka_topics.py``
creates topics, ``kafka_queues.py`` inspects queues and handles dead letters,
``kafka_dlq.py`` reads the dead-letter topic back, ``kafka_link.py`` reports the link
to the cluster (lost/restored) instead of every connection error; ``kafka_naming.py``
names topics and groups, ``kafka_config.py`` holds the clients' settings and
``kafka_errors.py`` words their errors.

Publishing never waits for the network (except to create a queue's topic on
first use): messages go to librdkafka's queue, idempotent with ``acks=all``;
``flush`` waits for them. A message the cluster finally refuses is counted and
reported to ``KafkaBroker.on_delivery_error`` from the next ``publish``/``flush``.
``purge`` deletes the topic's records (Kafka DeleteRecords), so it works while
workers consume.

``settings.broker_options`` pass through to librdkafka unchanged (SASL, SSL,
``acks``, ``linger.ms``...), each to the clients it applies to, except
``kafka_max_in_flight``, which is yadtq's own. ``group.id`` and the two offset
commit switches are fixed: the guarantees above depend on them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from confluent_kafka import (
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient

from ..exceptions import ConfigurationError
from ..namespace import Naming
from ..priority import lane_label
from . import kafka_topics
from .base import Broker, Consumer, DeadLetter, Delivery, DrainCallback, Message
from .kafka_config import (
    CLASSIC_GROUP_DEFAULTS,
    CONSUMER_ONLY,
    DEFAULT_LINGER_MS,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PREFETCH_KBYTES,
    DLQ_MAX_MESSAGE_BYTES,
    DRAIN_TIMEOUT_MAX,
    LANE_DISCOVERY_MS,
    MAX_IN_FLIGHT_OPTION,
    PRODUCER_IN_FLIGHT,
    PRODUCER_ONLY,
    STATIC_MEMBERSHIP_OPTION,
    parse_url,
)
from .kafka_errors import _error_text
from .kafka_link import KafkaLink, stats_interval_ms
from .kafka_producer import KafkaPublishing

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

#: How many forks this process descends from: compared on every send instead of
#: ``os.getpid()`` (a system call), so a forked child still builds its own clients.
_forks = [0]


def _forked() -> None:
    _forks[0] += 1


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forked)


class KafkaBroker(KafkaPublishing, Broker):
    """Publishes to ``<namespace>.<queue>`` topics and hands out :class:`KafkaConsumer` objects.

    Attributes:
        naming: the app's namespace: every topic and group name comes from it.
        on_delivery_error: called with (task id, error text) for every message the
            cluster finally refused (after librdkafka's retries); the app uses it
            to mark the task failed. Runs in a thread that publishes or flushes.
        delivery_errors: how many messages failed delivery so far.
    """

    scheme = "kafka"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self.servers = parse_url(url)
        self.naming = Naming.of(settings)
        options = dict(settings.broker_options)
        try:
            self.max_in_flight = max(1, int(options.pop(MAX_IN_FLIGHT_OPTION, DEFAULT_MAX_IN_FLIGHT)))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"broker_options[{MAX_IN_FLIGHT_OPTION!r}]: {exc}") from None
        self.static_membership = str(options.pop(STATIC_MEMBERSHIP_OPTION, "")).lower() in (
            "1", "true", "yes", "on")
        self.options = options
        self.delivery_errors = 0
        self._lock = threading.Lock()
        self._topics: set[str] = set()
        self._pid = os.getpid()
        self._generation = _forks[0]
        self._producer: Optional[Any] = None
        #: ``time.monotonic()`` after which ``publish`` serves the producer's callbacks.
        self._next_poll = 0.0
        self._dlq_producer: Optional[Any] = None
        self._admin: Optional[Any] = None
        self._producer_fatal: Optional[str] = None
        #: ``kafka_queues.QueueDiscovery`` of ``queues_with_tasks``, made on first use.
        self._discovery: Optional[Any] = None
        self._client_id = f"yadtq-{socket.gethostname()}-{os.getpid()}"
        #: This process's link to the cluster, shared by all its clients.
        self.link = KafkaLink(self.servers)

    # ------------------------------------------------------------------ configuration
    def config(self, role: str, *, client: Optional[str] = None, **forced: Any) -> dict[str, Any]:
        """librdkafka configuration for a ``producer``, ``consumer`` or ``admin`` client:
        yadtq's defaults, then ``broker_options`` that apply to that role, then ``forced``.

        ``client`` names the client for :class:`KafkaLink`: its connection errors and
        log lines then become one "lost"/"restored" pair per outage (see kafka_link.py).
        """
        name = client or role
        conf: dict[str, Any] = {
            "bootstrap.servers": self.servers,
            "client.id": self._client_id,
            "logger": self.link.log_sink(name),
            "error_cb": self.link.error_cb(name, self._other_error(name)),
        }
        if client is not None and role != "admin":
            conf.update({"statistics.interval.ms": stats_interval_ms(role),
                         "stats_cb": self.link.stats_cb(name)})
        if role == "producer":
            conf.update({"enable.idempotence": True, "acks": "all", "linger.ms": DEFAULT_LINGER_MS,
                         "max.in.flight.requests.per.connection": PRODUCER_IN_FLIGHT,
                         "delivery.report.only.error": True})
        elif role == "consumer":
            conf.update({"auto.offset.reset": "earliest",
                         "queued.max.messages.kbytes": DEFAULT_PREFETCH_KBYTES,
                         "topic.metadata.refresh.interval.ms": LANE_DISCOVERY_MS})
            if str(self.options.get("group.protocol", "classic")).lower() == "classic":
                # KIP-848 ("consumer") sets these broker-side and refuses them here.
                conf.update(CLASSIC_GROUP_DEFAULTS)
        else:
            conf["allow.auto.create.topics"] = False
        skip = {"producer": CONSUMER_ONLY, "consumer": PRODUCER_ONLY}.get(role, PRODUCER_ONLY | CONSUMER_ONLY)
        conf.update({k: v for k, v in self.options.items() if k not in skip})
        conf.update(forced)
        return conf

    @staticmethod
    def _other_error(client: str) -> Callable[[Any], None]:
        def log(err: Any) -> None:
            if err.fatal():
                logger.critical("Kafka %s: fatal error: %s", client, err.str())
            else:
                logger.warning("Kafka %s: %s", client, err.str())

        return log

    def _client(self, factory: Callable[[dict[str, Any]], Any], conf: dict[str, Any]) -> Any:
        try:
            return factory(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigurationError(f"invalid Kafka client settings: {_error_text(exc)}") from exc

    def _check_fork(self) -> None:
        # librdkafka's threads do not survive fork(): a child builds its own clients.
        if self._generation == _forks[0]:
            return
        self._generation = _forks[0]
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._producer = self._dlq_producer = self._admin = None
            self.link = KafkaLink(self.servers)

    @property
    def admin(self) -> Any:
        self._check_fork()
        if self._admin is None:
            with self._lock:
                if self._admin is None:
                    self._admin = self._client(AdminClient, self.config("admin"))
        return self._admin

    # ------------------------------------------------------------------ topics
    def ensure_topic(self, topic: str, partitions: Optional[int] = None,
                     config: Optional[dict[str, str]] = None) -> None:
        """Create ``topic`` unless it exists (``partitions``, default ``settings.partitions``;
        topic ``config`` such as ``max.message.bytes``), and wait until the cluster's metadata
        shows it with leaders. Cached per broker (see ``kafka_topics.py``)."""
        kafka_topics.ensure_topic(self, topic, partitions, config)

    def _partitions(self, topic: str) -> Optional[list[int]]:
        return kafka_topics.partitions(self, topic)

    # ------------------------------------------------------------------ consuming
    def consumer(self, queues: Sequence[str], *, on_drain: Optional[DrainCallback] = None,
                 worker: Optional[str] = None) -> Consumer:
        """A consumer of ``queues`` (one group member per queue), owned by the calling thread.

        With ``broker_options["kafka_static_membership"]`` on, ``worker`` (the worker's
        name) becomes the members' ``group.instance.id``: a worker restarted under the
        same name within ``session.timeout.ms`` gets its partitions back without a
        rebalance. Two live workers must then never share a name.
        """
        names = list(dict.fromkeys(queues))
        if not names:
            raise ConfigurationError("a consumer needs at least one queue")
        drain_timeout = min(self.settings.shutdown_timeout, DRAIN_TIMEOUT_MAX)
        from .kafka_consumer import KafkaConsumer  # the consumer module imports this one

        member_name = f"yadtq-{worker}" if worker and self.static_membership else None
        return KafkaConsumer(self, names, on_drain, self.max_in_flight, drain_timeout, member_name)

    # ------------------------------------------------------------------ queues and dead letters
    def depth(self, queue: str) -> Optional[int]:
        """The group's lag on the queue's topics (every priority lane): messages not yet
        consumed and committed."""
        from .kafka_queues import total_lag  # kafka_queues imports this module

        return total_lag(self, queue)

    def depth_by_priority(self, queue: str) -> Optional[dict[str, int]]:
        """The group's lag per priority lane (``"0-3"``, ``"4-6"``, ``"7-9"``)."""
        from .kafka_queues import lag_by_lane

        found = lag_by_lane(self, queue)
        return {lane_label(lane): sum(parts.values()) for lane, parts in sorted(found.items())
                if sum(parts.values())}

    def queues_with_tasks(self) -> list[str]:
        """The namespace's queues whose group lags (see ``kafka_queues.QueueDiscovery``)."""
        from .kafka_queues import QueueDiscovery

        with self._lock:
            if self._discovery is None:
                self._discovery = QueueDiscovery(self)
            discovery = self._discovery
        return list(discovery.queues())

    def purge(self, queue: str) -> int:
        """Delete every message of the queue's topic (Kafka DeleteRecords up to the end).

        Works while workers consume: their next fetch finds its position below the
        new log start and resets to it. Returns the group's lag before the purge.
        """
        from .kafka_queues import purge

        return purge(self, queue)

    def send_dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Produce a delivery to the dead-letter topic and wait until the cluster has it.

        Raises:
            BrokerUnavailable: not acknowledged within ``DLQ_TIMEOUT``; the caller
                must then not report the delivery done.
        """
        from .kafka_queues import send_dead_letter

        send_dead_letter(self, delivery, reason)

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        """The newest ``limit`` messages of the dead-letter topic, oldest first, as they were delivered
        (queue, key, original headers). Reads the topic's tail; commits nothing."""
        from .kafka_dlq import read_deliveries  # kafka_dlq builds on this module

        return read_deliveries(self, limit)

    def dead_letter_message(self, message: Message, reason: str) -> None:
        """A message never delivered (e.g. a scheduled one the cluster refuses) to the dead-letter topic."""
        self.send_dead_letter(Delivery(body=message.body, queue=message.queue,
                                       headers=dict(message.headers), key=message.key), reason)

    def _dead_letter_producer(self) -> Any:
        # Its own producer, so waiting for a dead letter never waits for ordinary
        # publishing and per-message delivery reports stay on (``only.error`` off).
        self._check_fork()
        if self._dlq_producer is None:
            with self._lock:
                if self._dlq_producer is None:
                    self._dlq_producer = self._client(Producer, self.config(
                        "producer", client="dead-letter producer", **{
                            "delivery.report.only.error": False,
                            "message.max.bytes": DLQ_MAX_MESSAGE_BYTES}))
        return self._dlq_producer

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters still in the dead-letter topic (see ``kafka_dlq.py``)."""
        from .kafka_dlq import scan  # kafka_dlq builds on this module

        return scan(self).letters[-limit:] if limit > 0 else []

    def requeue_dead_letters(self, ids: Optional[Sequence[str]] = None) -> list[DeadLetter]:
        from .kafka_dlq import requeue

        return requeue(self, ids)

    def purge_dead_letters(self) -> int:
        from .kafka_dlq import purge

        return purge(self)
