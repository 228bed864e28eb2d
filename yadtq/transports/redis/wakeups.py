"""Wake-ups over Redis pub/sub (``transports/wakeups.py``): the channels are named
like the keys whose change they announce.

- ``<prefix>:control:<worker>``: ``send_control`` publishes an empty message there
  after queueing a command, so the worker takes it at once.
- ``<prefix>:schedule`` (one per slot group): the scripts that add to the schedule
  publish there when an entry becomes its earliest (``schedule_add`` and
  ``record.lua``), and ``periodic.lua`` when a schedule is saved or resumed: every
  sleeping scheduler looks again, whoever added it (a client's countdown).

One pub/sub connection per worker, read by one thread that blocks on it for up to
``LISTEN_TIMEOUT``: an idle worker's listener costs nothing between messages.
Connection faults are retried quietly (the worker's backend link reports outages);
after each (re)subscription every kind is woken, since messages may have been lost.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from typing import Any, Optional

import redis
from redis.client import PubSub

from ...exceptions import BackendUnavailable
from ..wakeups import WAKE_CONTROL, WAKE_KINDS, WAKE_SCHEDULE, Wake, WakeupSource, WakeupWatch
from .clients import refresh_topology
from .inbox import RECONNECT_DELAY_MAX, SUBSCRIBE_TIMEOUT, _close_quietly
from .keys import SCHEDULE_KEY
from .layout import HOME, Layout
from .operations import CONTROL_KEY

logger = logging.getLogger(__name__)

#: Seconds one blocking read of the listener lasts before it looks at its closed flag
#: (``close`` also wakes it at once by publishing on its control channel).
LISTEN_TIMEOUT = 60.0


class RedisWakeups(WakeupSource):
    """``watch_wakeups`` of :class:`~yadtq.transports.redis.RedisBackend`."""

    _redis: redis.Redis
    layout: Layout

    def watch_wakeups(self, worker: str, wake: Wake) -> WakeupWatch:
        channels = {self.layout.key(CONTROL_KEY, worker, group=HOME): WAKE_CONTROL}
        channels.update((self.layout.key(SCHEDULE_KEY, group=g), WAKE_SCHEDULE)
                        for g in self.layout.all_groups())
        return _Listener(self._redis, channels, wake)


class _Listener(WakeupWatch):
    def __init__(self, client: redis.Redis, channels: dict[str, str], wake: Wake) -> None:
        self._client = client
        self._channels = channels
        self._wake = wake
        self._closed = threading.Event()
        self._live = False
        self._pubsub: Optional[PubSub] = self._subscribe()
        self._live = True
        self._thread = threading.Thread(target=self._listen, name="yadtq-wakeups", daemon=True)
        self._thread.start()

    @property
    def live(self) -> bool:
        return self._live and not self._closed.is_set()

    def close(self) -> None:
        self._closed.set()
        # Wake the listener now rather than after LISTEN_TIMEOUT, on a thread of its own:
        # a stopping worker never waits for a backend that is down.
        threading.Thread(target=self._nudge, name="yadtq-wakeups-close", daemon=True).start()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def _nudge(self) -> None:
        with suppress(redis.RedisError, redis.exceptions.RedisClusterException):
            self._client.publish(next(iter(self._channels)), b"")

    def _subscribe(self) -> PubSub:
        try:
            return self._subscribe_once()
        except BackendUnavailable:
            if not refresh_topology(self._client):  # Redis Cluster: a primary may have moved
                raise
            return self._subscribe_once()

    def _subscribe_once(self) -> PubSub:
        """A pub/sub connection subscribed to every channel, each confirmed by the server
        (so nothing published after this returns can be missed)."""
        pubsub: PubSub = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(*self._channels)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            confirmed = 0
            while confirmed < len(self._channels):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.TimeoutError("no confirmation of SUBSCRIBE for the wake-up channels")
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    confirmed += 1
            return pubsub
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            _close_quietly(pubsub)
            raise BackendUnavailable(f"redis backend: subscribing to wake-ups failed: {exc}") from exc

    def _listen(self) -> None:
        delay = 0.05
        pubsub = self._pubsub
        while not self._closed.is_set():
            try:
                if pubsub is None:
                    pubsub = self._pubsub = self._subscribe()
                    self._live = True
                    self._wake_all()
                    delay = 0.05
                message = pubsub.get_message(timeout=LISTEN_TIMEOUT)
            except Exception as exc:  # the listener must outlive any connection fault
                if self._closed.is_set():
                    break
                logger.debug("redis backend: wake-up listener reconnecting: %s", exc)
                self._live = False
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = self._pubsub = None
                self._closed.wait(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX)
                continue
            if message is not None and not self._closed.is_set():
                self._deliver(message)
        self._live = False
        if pubsub is not None:
            _close_quietly(pubsub)

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "message":
            channel = message["channel"]
            kind = self._channels.get(channel.decode() if isinstance(channel, bytes) else channel)
            if kind is not None:
                self._call(kind)
        elif message["type"] == "subscribe":  # redis-py reconnected and resubscribed
            self._wake_all()

    def _wake_all(self) -> None:
        for kind in WAKE_KINDS:
            self._call(kind)

    def _call(self, kind: str) -> None:
        try:
            self._wake(kind)
        except Exception:  # a faulty callback must not end the listening
            logger.exception("wake-up callback failed for %s", kind)
