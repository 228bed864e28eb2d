"""Waiting for results from asyncio code on Redis, with ``redis.asyncio``: no thread per wait.

The same protocol as the blocking :meth:`yadtq.transports.redis.RedisBackend.wait`:
each event loop gets one :class:`AsyncInbox`, a pub/sub channel of its own with
one listener task. A wait runs the ``watch`` script (read the record and, unless it
is ready, register the inbox as a waiter in the same step) and then sleeps until
the script that makes the task ready publishes its id to the inbox. After a
reconnect every waiter is woken to read and register again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Callable, Optional

import redis
import redis.asyncio as aioredis

from ...exceptions import BackendUnavailable

logger = logging.getLogger(__name__)

#: Seconds the listener blocks on its connection before looking again.
LISTEN_TIMEOUT = 1.0
SUBSCRIBE_TIMEOUT = 5.0
RECONNECT_DELAY_MAX = 2.0
#: Connections one event loop's waits share (the listener holds one more).
MAX_CONNECTIONS = 16


class AsyncInbox:
    """One event loop's channel, its listener task, and the waiters it wakes."""

    #: The one :meth:`open` that every wait started meanwhile awaits (see :meth:`ready`).
    _opening: Optional[asyncio.Task[AsyncInbox]] = None

    def __init__(self, url: str, options: dict[str, Any], channel: str, watch_lua: str) -> None:
        self.channel = channel
        options.setdefault("max_connections", MAX_CONNECTIONS)
        # Blocking: many concurrent waits queue for a connection instead of failing.
        self._pool = aioredis.BlockingConnectionPool.from_url(url, **options)
        self._client = aioredis.Redis(connection_pool=self._pool)
        self._watch = self._client.register_script(watch_lua)
        self._events: dict[str, list[asyncio.Event]] = {}
        self._pubsub: Optional[Any] = None
        self._listener: Optional[asyncio.Task[None]] = None

    async def open(self) -> AsyncInbox:
        """Subscribe (confirmed by the server) and start listening.

        Raises:
            BackendUnavailable: Redis did not confirm the subscription.
        """
        self._pubsub = await self._subscribe()
        self._listener = asyncio.get_running_loop().create_task(self._listen())
        return self

    async def ready(self) -> AsyncInbox:
        """Open it once, however many waits ask at the same time: a thousand ``aget``
        started together share one subscription (each opening its own would open a
        thousand connections). A failed opening raises in each of them.

        Raises:
            BackendUnavailable: Redis did not confirm the subscription.
        """
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self.open())
        return await asyncio.shield(self._opening)  # one cancelled wait cancels no other

    def usable(self) -> bool:
        """Listening, or being opened (a failed opening makes it unusable)."""
        opening = self._opening
        if opening is not None and not opening.done():
            return True
        return self._listener is not None and not self._listener.done()

    async def wait(self, task_id: str, keys: Sequence[str], ttl: int, timeout: Optional[float],
                   ready: Callable[[list[Any]], bool]) -> Optional[list[Any]]:
        """The flat record (``HGETALL`` reply) once ``ready`` says so; ``None`` on timeout.

        ``keys`` are the ``watch`` script's: the task's record and its waiters set.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        event = asyncio.Event()
        self._events.setdefault(task_id, []).append(event)
        try:
            while True:
                event.clear()  # before reading: a notification from now on is not missed
                try:
                    flat = await self._watch(keys=list(keys), args=[self.channel, ttl])
                except redis.RedisError as exc:
                    raise BackendUnavailable(f"redis backend: waiting failed: {exc}") from exc
                if ready(flat):
                    return list(flat)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            events = self._events.get(task_id, [])
            if event in events:
                events.remove(event)
            if not events:
                self._events.pop(task_id, None)

    async def _subscribe(self) -> Any:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {self.channel}")
                message = await pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    return pubsub
        except redis.RedisError as exc:
            with suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise BackendUnavailable(f"redis backend: subscribing failed: {exc}") from exc

    async def _listen(self) -> None:
        delay = 0.05
        pubsub = self._pubsub
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = self._pubsub = await self._subscribe()
                        logger.info("redis backend: resubscribed to %s", self.channel)
                        self._wake_all()
                        delay = 0.05
                    message = await pubsub.get_message(timeout=LISTEN_TIMEOUT)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the listener must outlive any connection fault
                    logger.warning("redis backend: async notification listener: %s; reconnecting", exc)
                    if pubsub is not None:
                        with suppress(Exception):
                            await pubsub.aclose()
                        pubsub = self._pubsub = None
                    self._wake_all()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_DELAY_MAX)
                    continue
                if message is None:
                    continue
                if message["type"] == "message":
                    self._wake(message["data"].decode())
                elif message["type"] == "subscribe":
                    self._wake_all()
        finally:  # the loop is ending (asyncio.run cancels leftover tasks): close the connections
            if pubsub is not None:
                with suppress(Exception):
                    await pubsub.aclose()
            with suppress(Exception):
                await self._client.aclose()
            with suppress(Exception):
                await self._pool.disconnect()

    def _wake(self, task_id: str) -> None:
        for event in self._events.get(task_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()
