"""The inbox: one pub/sub channel per backend instance and the thread that listens on it."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import suppress
from typing import Optional

import msgpack
import redis
from redis.client import PubSub

from ...exceptions import BackendUnavailable
from .clients import refresh_topology

logger = logging.getLogger(__name__)

#: Seconds the inbox listener blocks on its connection before looking at its stop flag.
LISTEN_TIMEOUT = 1.0
#: Seconds to wait for a SUBSCRIBE confirmation.
SUBSCRIBE_TIMEOUT = 5.0
RECONNECT_DELAY_MAX = 2.0


#: The first byte of a notification that carries the ready record: a packed array of two
#: (``notify`` in ``scripts/common.lua``). A task id, UTF-8, never starts with it.
CARRIED = b"\x92"


class Inbox:
    """One backend instance's pub/sub channel, and the one thread that listens on it.

    Messages are task ids, or (on a channel named with ``RECORD_INBOX_SUFFIX``) a task
    id with its ready record, kept for the waiters (:meth:`carried`) so they need not
    read it; the listener sets the events of the threads waiting on them. After a
    reconnect, notifications may have been lost, so every waiter is woken to read its
    record again (and register anew).
    """

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.channel = channel
        self.pid = os.getpid()
        self._client = client
        self._lock = threading.Lock()
        self._events: dict[str, list[threading.Event]] = {}
        #: The ready records that came with notifications, while their task has waiters:
        #: each an ``HGETALL`` reply's fields and values, flat.
        self._carried: dict[str, list[bytes]] = {}
        self._closed = threading.Event()
        self._pubsub: Optional[PubSub] = self._subscribe()
        self._thread = threading.Thread(target=self._listen, name="yadtq-redis-inbox", daemon=True)
        self._thread.start()

    def usable(self) -> bool:
        """False after a fork (the listener thread stayed in the parent) or once closed."""
        return self.pid == os.getpid() and not self._closed.is_set() and self._thread.is_alive()

    def expect(self, task_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events.setdefault(task_id, []).append(event)
        return event

    def carried(self, task_id: str) -> Optional[list[bytes]]:
        """The ready record of ``task_id`` that came with its notification, if one did
        (an ``HGETALL`` reply's fields and values, flat)."""
        with self._lock:
            return self._carried.get(task_id)

    def forget(self, task_id: str, event: threading.Event) -> None:
        with self._lock:
            events = self._events.get(task_id, [])
            if event in events:
                events.remove(event)
            if not events:
                self._events.pop(task_id, None)
                self._carried.pop(task_id, None)

    def close(self) -> None:
        self._closed.set()
        with suppress(redis.RedisError):  # wake the listener now rather than after LISTEN_TIMEOUT
            self._client.publish(self.channel, b"")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(LISTEN_TIMEOUT + 1.0)

    def _subscribe(self) -> PubSub:
        """A pub/sub connection subscribed to the channel, confirmed by the server.

        Waiters register the channel only after this returns, so no notification
        can be published to it before the subscription is in place. On Redis Cluster
        a failure refreshes the slot map and tries once more: the node picked may be a
        primary that failed over since the map was read.
        """
        try:
            return self._subscribe_once()
        except BackendUnavailable:
            if not refresh_topology(self._client):
                raise
            return self._subscribe_once()

    def _subscribe_once(self) -> PubSub:
        pubsub: PubSub = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {self.channel}")
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    return pubsub
        except redis.RedisError as exc:
            _close_quietly(pubsub)
            raise BackendUnavailable(f"redis backend: subscribing failed: {exc}") from exc

    def _listen(self) -> None:
        """Listen until closed, reconnecting after any fault. A lost connection is logged
        once when lost and once when back (never once per retry), as worker links are."""
        delay = 0.05
        pubsub = self._pubsub
        lost_at: Optional[float] = None
        while not self._closed.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    self._wake_all()
                    delay = 0.05
                    if lost_at is not None:
                        logger.warning("redis backend: notifications restored after %.1f s",
                                       time.monotonic() - lost_at)
                        lost_at = None
                message = pubsub.get_message(timeout=LISTEN_TIMEOUT)
            except Exception as exc:  # the listener must outlive any connection fault
                if self._closed.is_set():
                    break
                if lost_at is None:
                    lost_at = time.monotonic()
                    logger.warning("redis backend: connection for notifications lost (%s); "
                                   "reconnecting", exc)
                else:
                    logger.debug("redis backend: still reconnecting the notification listener: %s", exc)
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                self._closed.wait(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX)
                continue
            if message is None:
                continue
            if message["type"] == "message":
                self._deliver(message["data"])
            elif message["type"] == "subscribe":  # redis-py reconnected and resubscribed
                self._wake_all()
        if pubsub is not None:
            _close_quietly(pubsub)

    def _deliver(self, data: bytes) -> None:
        """Wake the waiters of a notification's task, keeping the record it carries."""
        flat: Optional[list[bytes]] = None
        if data[:1] == CARRIED:
            try:
                raw_id, flat = msgpack.unpackb(data, raw=True)
                task_id = raw_id.decode()
            except Exception as exc:  # not ours (anyone may publish): the listener goes on
                logger.warning("redis backend: an undecodable notification ignored: %s", exc)
                return
        else:
            task_id = data.decode(errors="replace")
        with self._lock:
            events = self._events.get(task_id)
            if not events:
                return
            if flat is not None:
                self._carried[task_id] = flat
            for event in events:
                event.set()

    def _wake_all(self) -> None:
        with self._lock:
            for events in self._events.values():
                for event in events:
                    event.set()


def _close_quietly(pubsub: PubSub) -> None:
    try:
        pubsub.close()
    except Exception as exc:  # closing a broken connection may fail in many ways
        logger.debug("closing a pub/sub connection: %s", exc)
