"""``kafka://host:port[,host:port]``: the production broker, on confluent-kafka (librdkafka).

Layout on the cluster:

- one topic per queue, ``<namespace>.<queue>`` (``yadtq.<queue>`` by default; the
  names come from the settings' :class:`~yadtq.namespace.Naming`, ``broker.naming``),
  created on first use with ``settings.partitions`` partitions; dead letters go to
  ``<namespace>.dlq``;
- priority lanes: tasks of priority 4-6 and 7-9 go to the queue's lane topics
  ``<namespace>.<queue>.prio4`` and ``<namespace>.<queue>.prio7`` (:func:`lane_topic`),
  created on first use like queue topics. The queue's group subscribes to every lane;
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

Modules: this one publishes and configures clients; ``kafka_consumer.py`` consumes,
``kafka_queues.py`` inspects queues and handles dead letters, ``kafka_link.py``
reports the link to the cluster (lost/restored) instead of every connection error.

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

import importlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional
from urllib.parse import urlsplit

from confluent_kafka import (
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient

from ..envelope import decode, peek_task_id
from ..exceptions import BrokerUnavailable, ConfigurationError, ProtocolError
from ..namespace import DLQ_NAME, Naming
from ..priority import HEADER_PRIORITY, LANES, lane_label, lane_of, priority_of
from .base import Broker, Consumer, DeadLetter, Delivery, DrainCallback, Message
from .kafka_link import KafkaLink, stats_interval_ms

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

#: Headers added to a dead-lettered message.
HEADER_DLQ_REASON = "yadtq-dlq-reason"
HEADER_DLQ_SOURCE = "yadtq-dlq-source"  # "topic:partition:offset"
#: On a dead letter too large for the dead-letter topic: the original body's size in bytes.
HEADER_DLQ_TRUNCATED = "yadtq-dlq-truncated"
#: ``max.message.bytes`` of the dead-letter topic when yadtq creates it: well above any task
#: topic (broker default about 1 MB), so a message a task topic accepted can be
#: dead-lettered whole, with its added headers.
DLQ_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: yadtq's own option in ``broker_options`` (never passed to librdkafka).
MAX_IN_FLIGHT_OPTION = "kafka_max_in_flight"
#: yadtq's own option: derive ``group.instance.id`` from the worker name.
STATIC_MEMBERSHIP_OPTION = "kafka_static_membership"
DEFAULT_MAX_IN_FLIGHT = 1000
DEFAULT_PORT = 9092
#: Producer batching delay. Measured on loopback: 5 ms puts ~7 ms on every
#: publish-to-fetch hop (the round-trip target of DESIGN.md §9 is 1.5 ms); 0 ms
#: gives ~0.6 ms at about the same bulk throughput, since librdkafka still
#: batches whatever queues up while a request is in flight.
DEFAULT_LINGER_MS = 0
#: Least seconds between two ``poll(0)`` calls of ``publish`` on the producer.
PUBLISH_POLL_INTERVAL = 0.05
#: librdkafka's prefetch ceiling per consumer (its default, 64 MB, is a lot for a
#: worker that holds at most ``kafka_max_in_flight`` messages per partition).
DEFAULT_PREFETCH_KBYTES = 16384

#: Consumer group timing for the classic protocol (``broker_options`` override them): a
#: SIGKILLed worker's partitions move after ``session.timeout.ms`` (librdkafka's default,
#: 45 s, is three times the 15 s after which yadtq calls a worker unresponsive). 6 s is
#: the least a stock broker accepts (``group.min.session.timeout.ms``). It matters beyond
#: one kill: while a dead member is in the group, every rebalance (a worker joining)
#: waits for its session to time out, so under repeated kills the stalls add up. Members
#: learn of a rebalance from a heartbeat answer: a 1 s interval lets it end sooner.
CLASSIC_GROUP_DEFAULTS: dict[str, Any] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}

#: Seconds between two asynchronous commits of what is done.
COMMIT_INTERVAL = 0.2
#: Longest wait on one queue's consumer while others may have messages.
MULTI_QUEUE_SLICE = 0.01
#: Longest a revocation waits for in-flight tasks (also bounded by shutdown_timeout).
DRAIN_TIMEOUT_MAX = 10.0
#: Seconds ``publish`` waits for room in a full local queue before giving up.
PUBLISH_BLOCK_TIMEOUT = 30.0
#: Seconds for admin requests (topic creation, offsets) and dead-letter delivery.
ADMIN_TIMEOUT = 10.0
DLQ_TIMEOUT = 10.0

#: librdkafka properties that only producers (resp. consumers) accept; each is
#: left out of the other kind's configuration so neither logs a warning about it.
PRODUCER_ONLY = frozenset({
    "acks", "request.required.acks", "linger.ms", "queue.buffering.max.ms",
    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "batch.num.messages", "batch.size",
    "compression.type", "compression.codec", "compression.level", "enable.idempotence",
    "enable.gapless.guarantee", "message.timeout.ms", "delivery.timeout.ms", "request.timeout.ms",
    "retries", "message.send.max.retries", "transactional.id", "transaction.timeout.ms",
    "delivery.report.only.error", "partitioner", "sticky.partitioning.linger.ms", "queuing.strategy",
    "on_delivery",
})
CONSUMER_ONLY = frozenset({
    "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms",
    "heartbeat.interval.ms", "group.protocol", "group.protocol.type", "group.remote.assignor",
    "coordinator.query.interval.ms", "max.poll.interval.ms", "enable.auto.commit",
    "auto.commit.interval.ms", "enable.auto.offset.store", "queued.min.messages",
    "queued.max.messages.kbytes", "fetch.wait.max.ms", "fetch.queue.backoff.ms",
    "fetch.message.max.bytes", "max.partition.fetch.bytes", "fetch.max.bytes", "fetch.min.bytes",
    "fetch.error.backoff.ms", "isolation.level", "enable.partition.eof", "check.crcs",
    "auto.offset.reset", "consume.callback.max.messages", "offset.store.method", "on_commit",
})

# NewTopic and OffsetSpec are neither explicitly exported nor typed in every
# confluent-kafka release; reach them untyped so mypy --strict holds across versions.
_admin: Any = importlib.import_module("confluent_kafka.admin")

#: Errors a topic created moments ago answers with until its leaders are elected.
_LEADERSHIP_ERRORS = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                KafkaError.UNKNOWN_TOPIC_OR_PART})

_VALID_QUEUE = re.compile(r"^[A-Za-z0-9._-]+$")
#: Queue names ending like a lane topic are refused: their topic would be another queue's lane.
_LANE_LIKE = re.compile(r"\.prio[0-9]+$")
#: Topic suffix of each priority lane (index: lane of ``yadtq.priority.LANES``).
LANE_SUFFIXES: tuple[str, ...] = tuple("" if lane == 0 else f".prio{low}"
                                       for lane, (low, _) in enumerate(LANES))
#: How often a consumer refreshes its topic metadata (librdkafka's default is 5 minutes):
#: the longest a worker takes to find a lane topic created after it joined.
LANE_DISCOVERY_MS = 5000


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


def parse_url(url: str) -> str:
    """``kafka://h1:p1,h2`` -> librdkafka ``bootstrap.servers`` (``h1:p1,h2:9092``)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "kafka":
        raise ConfigurationError(f"not a kafka:// URL: {url!r}")
    netloc = parts.netloc.rpartition("@")[2]
    hosts = [h.strip() for h in netloc.split(",") if h.strip()]
    if not hosts:
        raise ConfigurationError(f"no Kafka host in {url!r} (expected kafka://host:port[,host:port])")
    servers = []
    for host in hosts:
        if host.startswith("["):  # [IPv6]:port or [IPv6]
            name, _, rest = host.partition("]")
            name, port = name + "]", rest[1:] if rest.startswith(":") else str(DEFAULT_PORT)
        elif host.count(":") == 1:
            name, port = host.split(":")
        elif ":" not in host:
            name, port = host, str(DEFAULT_PORT)
        else:
            raise ConfigurationError(f"write IPv6 Kafka hosts as [address]:port in {url!r}")
        if not name or not port.isdigit():
            raise ConfigurationError(f"bad host or port in Kafka URL {url!r}: {host!r}")
        servers.append(f"{name}:{port}")
    return ",".join(servers)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        err = exc.args[0]
        return f"{err.name()}: {err.str()}"
    return str(exc)


#: Errors that mean no broker of the cluster could be reached at all.
_UNREACHABLE_ERRORS = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                                 KafkaError._TIMED_OUT, KafkaError._TIMED_OUT_QUEUE})


def unavailable(servers: str, doing: str, exc: KafkaException) -> BrokerUnavailable:
    """The error to raise for ``exc`` met while ``doing`` something: "unreachable" when no
    broker answered (rather than, say, "cannot create topic" for a cluster that is down)."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is not None and err.code() in _UNREACHABLE_ERRORS:
        return BrokerUnavailable(f"Kafka broker unreachable at {servers} ({_error_text(exc)})")
    return BrokerUnavailable(f"cannot {doing}: {_error_text(exc)}")


def _reader(group: str) -> dict[str, Any]:
    """Settings of a short-lived consumer that only reads: it never commits."""
    return {"group.id": group, "enable.auto.commit": False, "enable.auto.offset.store": False}


def _identify(body: bytes) -> tuple[Optional[str], Optional[str]]:
    """(task id, task name) of an encoded envelope, as far as readable."""
    try:
        envelope = decode(body)
    except ProtocolError:
        return peek_task_id(body), None
    return envelope.id, envelope.task


class KafkaBroker(Broker):
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
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._producer = self._dlq_producer = self._admin = None
            self.link = KafkaLink(self.servers)

    @property
    def producer(self) -> Any:
        """The shared librdkafka producer (thread-safe), created on first use."""
        self._check_fork()
        producer = self._producer
        if producer is not None and self._producer_fatal is None:
            return producer
        with self._lock:
            if self._producer_fatal is not None and self._producer is not None:
                logger.error("replacing the Kafka producer after a fatal error: %s", self._producer_fatal)
                old, self._producer = self._producer, None
                old.purge()
                old.flush(0)  # reports the purged messages through the delivery hook
            self._producer_fatal = None
            if self._producer is None:
                self._producer = self._client(Producer, self.config(
                    "producer", client="producer", on_delivery=self._on_delivery,
                    error_cb=self.link.error_cb("producer", self._on_producer_error)))
            return self._producer

    @property
    def admin(self) -> Any:
        self._check_fork()
        if self._admin is None:
            with self._lock:
                if self._admin is None:
                    self._admin = self._client(AdminClient, self.config("admin"))
        return self._admin

    # ------------------------------------------------------------------ publishing
    def publish(self, messages: Sequence[Message]) -> None:
        """Queue messages in librdkafka and return without waiting for the network.

        Messages are idempotent and ``acks=all`` by default; a message the cluster
        finally refuses is reported to :attr:`on_delivery_error`.
        """
        if not messages:
            return
        producer = self.producer
        known = self._topics
        naming = self.naming
        deadline: Optional[float] = None
        for message in messages:
            headers = message.headers
            lane = lane_of(priority_of(headers)) if HEADER_PRIORITY in headers else 0
            topic = naming.topic(message.queue) + LANE_SUFFIXES[lane]
            if topic not in known:
                topic = lane_topic(naming, message.queue, lane)
                self.ensure_topic(topic)
            if headers and not isinstance(headers, dict):
                headers = dict(headers)
            while True:
                try:
                    producer.produce(topic, message.body, message.key, headers=headers or None)
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports to make room.
                    now = time.monotonic()
                    deadline = deadline or now + PUBLISH_BLOCK_TIMEOUT
                    if now >= deadline:
                        raise BrokerUnavailable(
                            f"Kafka producer queue still full after {PUBLISH_BLOCK_TIMEOUT:.0f} s "
                            f"({len(producer)} messages waiting)") from None
                    producer.poll(0.05)
                except KafkaException as exc:
                    raise BrokerUnavailable(f"cannot publish to {topic}: {_error_text(exc)}") from exc
        # Serve queued callbacks now and then, not on every send (a send in a loop would
        # pay for it each time); the app's delivery watch serves them while any are due.
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + PUBLISH_POLL_INTERVAL
            producer.poll(0)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            return
        # Delivery reports carry no headers: read the task from the body.
        task_id, task = _identify(msg.value() or b"")
        text = f"{err.name()}: {err.str()}"
        with self._lock:
            self.delivery_errors += 1
        logger.error("task %s[%s] not delivered to %s: %s", task or "?", task_id or "?", msg.topic(), text)
        hook = self.on_delivery_error
        if hook is not None:
            try:
                hook(task_id, text)
            except Exception:
                logger.exception("on_delivery_error hook failed for task %s", task_id)

    def _on_producer_error(self, err: Any) -> None:
        if err.fatal():
            logger.critical("Kafka producer fatal error: %s", err.str())
            self._producer_fatal = f"{err.name()}: {err.str()}"
        else:
            logger.warning("Kafka producer: %s", err.str())


    def serve_callbacks(self) -> None:
        """Serve the producers' queued callbacks (delivery reports, errors, statistics) now.

        A worker's producers publish rarely; without this their connection events
        would be served late, at their next publish, and report an outage long over."""
        if os.getpid() != self._pid:
            return
        for producer in (self._producer, self._dlq_producer):
            if producer is not None:
                producer.poll(0)

    def flush(self, timeout: Optional[float] = None) -> int:
        producer = self._producer
        if producer is None or os.getpid() != self._pid:
            return 0
        return int(producer.flush() if timeout is None else producer.flush(timeout))

    def close(self) -> None:
        left = self.flush(ADMIN_TIMEOUT)
        if left:
            logger.warning("closing the Kafka broker with %d messages not yet delivered", left)
        dlq = self._dlq_producer
        if dlq is not None and os.getpid() == self._pid:
            dlq.flush(ADMIN_TIMEOUT)

    # ------------------------------------------------------------------ topics
    def ensure_topic(self, topic: str, partitions: Optional[int] = None,
                     config: Optional[dict[str, str]] = None) -> None:
        """Create ``topic`` unless it exists (``partitions``, default ``settings.partitions``;
        topic ``config`` such as ``max.message.bytes``), and wait until the cluster's metadata
        shows it with leaders. Cached per broker."""
        if topic in self._topics:
            return
        admin = self.admin
        count = partitions or self.settings.partitions
        try:
            if not self._topic_ready(topic, wait=0.0):
                future = admin.create_topics(
                    [_admin.NewTopic(topic, num_partitions=count,
                                     replication_factor=self.settings.replication_factor,
                                     config=dict(config or {}))],
                    request_timeout=ADMIN_TIMEOUT)[topic]
                try:
                    future.result(timeout=ADMIN_TIMEOUT + 5)
                    logger.info("created topic %s (%d partitions)", topic, count)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
                if not self._topic_ready(topic, wait=ADMIN_TIMEOUT):
                    raise BrokerUnavailable(f"topic {topic} has no leaders after {ADMIN_TIMEOUT:.0f} s")
        except KafkaException as exc:
            raise unavailable(self.servers, f"create topic {topic}", exc) from exc
        with self._lock:
            self._topics.add(topic)

    def _topic_ready(self, topic: str, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            # All-topics metadata: asking for one topic could auto-create it.
            meta = self.admin.list_topics(timeout=ADMIN_TIMEOUT).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions and all(
                    p.leader >= 0 for p in meta.partitions.values()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _partitions(self, topic: str) -> Optional[list[int]]:
        meta = self.admin.list_topics(timeout=ADMIN_TIMEOUT).topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        return sorted(meta.partitions)

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
