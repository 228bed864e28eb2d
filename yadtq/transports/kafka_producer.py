"""Publishing to Kafka: the shared librdkafka producer, ``publish``, delivery reports
and errors, ``flush`` and ``close``.

Mixed into :class:`~yadtq.transports.kafka.KafkaBroker`, which owns the clients'
configuration and the topics; see ``kafka.py``'s docstring for what publishing
promises (it never waits for the network, except to create a queue's topic).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from confluent_kafka import KafkaException, Producer

from ..envelope import decode, peek_task_id
from ..exceptions import BrokerUnavailable, ProtocolError
from ..namespace import Naming
from ..priority import HEADER_PRIORITY, lane_of, priority_of
from .base import DeliveryErrorHook, Message
from .kafka_config import ADMIN_TIMEOUT, PUBLISH_BLOCK_TIMEOUT, PUBLISH_POLL_INTERVAL
from .kafka_errors import _error_text
from .kafka_link import KafkaLink
from .kafka_naming import LANE_SUFFIXES, lane_topic

logger = logging.getLogger(__name__)


def _identify(body: bytes) -> tuple[Optional[str], Optional[str]]:
    """(task id, task name) of an encoded envelope, as far as readable."""
    try:
        envelope = decode(body)
    except ProtocolError:
        return peek_task_id(body), None
    return envelope.id, envelope.task


class KafkaPublishing:
    """The producer side of :class:`~yadtq.transports.kafka.KafkaBroker`: uses its lock,
    link, known topics and client factory."""

    naming: Naming
    on_delivery_error: Optional[DeliveryErrorHook]
    delivery_errors: int
    link: KafkaLink
    _lock: threading.Lock
    _topics: set[str]
    _pid: int
    _producer: Optional[Any]
    #: ``time.monotonic()`` after which ``publish`` serves the producer's callbacks.
    _next_poll: float
    _dlq_producer: Optional[Any]
    _producer_fatal: Optional[str]

    def config(self, role: str, *, client: Optional[str] = None, **forced: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _client(self, factory: Callable[[dict[str, Any]], Any], conf: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _check_fork(self) -> None:
        raise NotImplementedError

    def ensure_topic(self, topic: str, partitions: Optional[int] = None,
                     config: Optional[dict[str, str]] = None) -> None:
        raise NotImplementedError

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
        for message in messages:
            headers = message.headers
            lane = lane_of(priority_of(headers)) if HEADER_PRIORITY in headers else 0
            topic = naming.topic(message.queue) + LANE_SUFFIXES[lane]
            if topic not in known:
                topic = lane_topic(naming, message.queue, lane)
                self.ensure_topic(topic)
            if headers and not isinstance(headers, dict):
                headers = dict(headers)
            try:
                producer.produce(topic, message.body, message.key, headers=headers or None)
            except (BufferError, KafkaException):
                self._produce_waiting(producer, topic, message.body, message.key, headers or None)
        self._serve_now_and_then(producer)

    def publish_plain(self, queue: str, rows: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
        """:meth:`publish` for messages of one queue's lane 0: the topic is resolved once
        and each message goes straight to ``produce``."""
        if not rows:
            return
        producer = self.producer
        topic = self.naming.topic(queue)
        if topic not in self._topics:
            topic = lane_topic(self.naming, queue, 0)
            self.ensure_topic(topic)
        produce = producer.produce
        for body, key, headers in rows:
            try:
                produce(topic, body, key, headers=headers)
            except (BufferError, KafkaException):
                self._produce_waiting(producer, topic, body, key, headers)
        self._serve_now_and_then(producer)

    def _produce_waiting(self, producer: Any, topic: str, body: bytes, key: Optional[bytes],
                         headers: Optional[Mapping[str, bytes]]) -> None:
        """``produce`` after it failed once: while the local queue is full, serve delivery
        reports to make room, for at most ``PUBLISH_BLOCK_TIMEOUT``.

        Raises:
            BrokerUnavailable: still full then, or librdkafka refused the message.
        """
        deadline = time.monotonic() + PUBLISH_BLOCK_TIMEOUT
        while True:
            try:
                producer.produce(topic, body, key, headers=headers)
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"Kafka producer queue still full after {PUBLISH_BLOCK_TIMEOUT:.0f} s "
                        f"({len(producer)} messages waiting)") from None
                producer.poll(0.05)
            except KafkaException as exc:
                raise BrokerUnavailable(f"cannot publish to {topic}: {_error_text(exc)}") from exc

    def _serve_now_and_then(self, producer: Any) -> None:
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
