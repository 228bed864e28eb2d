"""librdkafka client configuration for the Kafka broker: yadtq's own ``broker_options``,
its defaults and timeouts, the properties only producers (resp. consumers) accept, and
the servers of a ``kafka://`` URL. :meth:`~yadtq.transports.kafka.KafkaBroker.config`
assembles each client's configuration from these.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError

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
#: Produce requests in flight per broker connection. librdkafka's idempotent producer
#: allows up to 5, and with more than one it counts a batch that failed
#: NOT_LEADER_OR_FOLLOWER as written once a later batch of the same partition is
#: accepted, which a broker does when it knows nothing of the producer on that
#: partition (its first writes there, a leader that just moved, a producer idle past
#: ``producer.id.expiration.ms``): those tasks are lost without a delivery error
#: (``kafka_topics._leaders_serve``; docs/semantics.md). With one, the failed batch is
#: sent again before anything after it. No cost was measurable here: enqueue, bulk send,
#: end to end and round trip moved within their spread (3 alternated harness rounds).
PRODUCER_IN_FLIGHT = 1
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

#: How often a consumer refreshes its topic metadata (librdkafka's default is 5 minutes):
#: the longest a worker takes to find a lane topic created after it joined.
LANE_DISCOVERY_MS = 5000


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


def _reader(group: str) -> dict[str, Any]:
    """Settings of a short-lived consumer that only reads: it never commits."""
    return {"group.id": group, "enable.auto.commit": False, "enable.auto.offset.store": False}
