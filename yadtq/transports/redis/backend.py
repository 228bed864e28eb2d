"""``RedisBackend``: the backend's methods, each one round trip (see the package docstring).

This module holds the records (state changes, claims, waiting, progress) and dedupe
keys; each other capability is a mixin of its own module: ``schedule.py``,
``workers.py``, ``monitor.py``, ``operations.py``, ``periodic.py``, ``canvas.py``,
``limits.py``, ``slots.py`` and ``details.py``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import msgpack
import redis
from redis.commands.core import Script

from ...exceptions import BackendUnavailable, ConfigurationError
from ...namespace import Naming
from ...states import PROCESSING, QUEUED, READY_STATES, REVOKED
from ...task_ids import new_task_id
from ..base import (
    RECENT_LIMIT,
    SUMMARY_MESSAGE_LIMIT,
    Claim,
    Progress,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
)
from ..records import OUTAGE_INTERVALS
from .aio import AsyncInbox
from .canvas import RedisCanvas
from .clients import connect
from .codec import (
    change_fields,
    decode_record,
    float_text,
    history_entry,
    lua_batch,
    ms,
    packb,
    schedule_member,
)
from .details import RedisDetails
from .grouped import Call, as_mapping, unavailable
from .inbox import RECONNECT_DELAY_MAX, Inbox
from .keys import (
    DEDUPE_KEY,
    EVENTS_KEY,
    EVENTS_MAXLEN,
    INBOX_CHANNEL,
    INSTANCES_KEY,
    PROCESSING_KEY,
    PROGRESS_KEY,
    RECENT_FAILED_KEY,
    RECENT_SUCCESS_KEY,
    RECORD_INBOX_SUFFIX,
    RETRYING_KEY,
    REVOKED_KEY,
    SCHEDULE_KEY,
    STATS_KEY,
    TASK_KEY,
    WAITERS_KEY,
    WATCH_KEY,
)
from .layout import CLUSTER_GROUPS, Layout
from .limits import RedisLimits
from .monitor import RedisMonitor
from .operations import RedisOperations
from .periodic import RedisPeriodic
from .schedule import RedisSchedule
from .slots import RedisSlots
from .wakeups import RedisWakeups
from .workers import RedisWorkers

if TYPE_CHECKING:
    from ...settings import Settings

logger = logging.getLogger(__name__)

_SCRIPT_DIR = Path(__file__).parent / "scripts"
_SCRIPTS = ("record", "claim", "revoke", "watch", "claim_due", "heartbeat", "workers", "silent",
            "failure", "dedupe", "dedupe_swap", "release_dedupe", "snapshot", "states")


#: Seconds a reply may take (``socket_timeout``) and a connection may take to open
#: (``socket_connect_timeout``) unless ``backend_options`` say otherwise: without them a
#: Redis that stops answering (a hung server, a dropped route) hangs clients and workers
#: forever; with them the call raises ``BackendUnavailable`` and is retried.
SOCKET_TIMEOUT = 10.0
SOCKET_CONNECT_TIMEOUT = 5.0


#: The ``backend_options`` yadtq reads itself; redis-py gets the others.
YADTQ_OPTIONS = ("prefix", "slot_groups", "events")


def with_timeouts(options: Mapping[str, Any]) -> dict[str, Any]:
    """``backend_options`` with the default socket timeouts filled in (``None`` given
    explicitly keeps redis-py's: no timeout)."""
    found = dict(options)
    found.setdefault("socket_timeout", SOCKET_TIMEOUT)
    found.setdefault("socket_connect_timeout", SOCKET_CONNECT_TIMEOUT)
    return found


@cache
def _lua(name: str) -> str:
    return (_SCRIPT_DIR / "common.lua").read_text() + "\n" + (_SCRIPT_DIR / f"{name}.lua").read_text()


def _record_of(task_id: str, flat: Sequence[bytes]) -> Optional[TaskRecord]:
    """The record of a ``watch`` reply or a notification (``HGETALL`` pairs, flat)."""
    return decode_record(task_id, as_mapping(flat))


def _ready_reply(flat: list[Any]) -> bool:
    """Whether a ``watch`` reply (``HGETALL`` pairs) holds a ready state."""
    fields = as_mapping(flat)
    state = fields.get(b"state")
    return state is not None and state.decode() in READY_STATES


class RedisBackend(RedisSchedule, RedisWorkers, RedisMonitor, RedisOperations, RedisPeriodic, RedisCanvas,
                   RedisLimits, RedisSlots, RedisDetails, RedisWakeups, ResultBackend):
    """Task state, results, the schedule, heartbeats and dedupe keys in Redis."""

    scheme = "redis"
    #: How the canvas steps (canvas.py) translate redis-py's exceptions.
    _guard = staticmethod(unavailable)

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        options = with_timeouts(settings.backend_options)
        # The app's namespace; an explicit ``prefix`` option still wins.
        self.prefix = str(options.pop("prefix", Naming.of(settings).redis_prefix))
        groups = options.pop("slot_groups", None)
        events = options.pop("events", False)
        if not isinstance(events, bool):
            raise ConfigurationError(f"bad redis events option {events!r}: expected true or false")
        #: Entries kept in the capped events stream; 0 writes none (the default).
        self._events_maxlen = EVENTS_MAXLEN if events else 0
        options["decode_responses"] = False
        client, self._cluster = connect(url, options)
        self._redis = cast("redis.Redis", client)
        try:
            self.layout = Layout(self.prefix, int(groups) if groups is not None
                                 else CLUSTER_GROUPS if self._cluster else 1)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad redis slot_groups option {groups!r}: {exc}") from exc
        #: Schedule members this instance leased, with their group (for ``release_due``).
        self._leased: dict[bytes, int] = {}
        self._ttl = ms(settings.result_expires)
        #: Seconds with no heartbeat from anyone that make an outage (records.Watch).
        self._outage_gap = OUTAGE_INTERVALS * settings.heartbeat_interval
        self._scripts: dict[str, Script] = {n: self._redis.register_script(_lua(n)) for n in _SCRIPTS}
        self._inbox: Optional[Inbox] = None
        self._inbox_lock = threading.Lock()
        #: One inbox per event loop that waits (``wait_async``).
        self._async_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncInbox] = (
            weakref.WeakKeyDictionary())

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        """The full name of key ``name`` (a ``*_KEY`` constant), followed by ``suffix``, in
        slot group ``group`` (default: the group of ``suffix``; see ``layout.py``)."""
        return self.layout.key(name, suffix, group)

    def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with unavailable(script):
            return self._call_script(self._scripts[script], list(keys), list(args))

    # -- states and results
    def record(self, changes: Sequence[StateChange],
               scheduled: Sequence[ScheduledMessage] = ()) -> None:
        """Store the batch and the schedule entries in one script: all or nothing.

        Recording ``retrying`` with its scheduled retry in one step is what keeps a
        crash from losing the retry (DESIGN.md section 4).
        """
        if not changes and not scheduled:
            return
        self._calls("record", self._record_calls(changes, scheduled))

    def _record_calls(self, changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage],
                      states: bool = False) -> list[Call]:
        """The record script's calls, one per slot group the batch touches (also run by
        ``record_joined``); a change and the schedule entries of its task are in one. With
        ``states`` each call returns the states its tasks are left in (``record.lua``)."""
        groups: dict[int, tuple[list[StateChange], list[ScheduledMessage]]] = {}
        for c in changes:
            groups.setdefault(self.layout.group(c.task_id), ([], []))[0].append(c)
        for e in scheduled:
            groups.setdefault(self.layout.group(e.task_id), ([], []))[1].append(e)
        return [self._record_call(g, *parts, states) for g, parts in groups.items()]

    def _record_call(self, group: int, changes: Sequence[StateChange],
                     scheduled: Sequence[ScheduledMessage], states: bool) -> Call:
        batch = [[c.task_id, c.state, float_text(c.timestamp), c.worker or "", c.name or "",
                  history_entry(c.state, c.timestamp, c.worker), change_fields(c), c.queue or "",
                  c.error.type if c.error else "",
                  c.error.message[:SUMMARY_MESSAGE_LIMIT] if c.error else "",
                  "1" if c.dead_lettered else "", "1" if c.undelivered else ""] for c in changes]
        k = self._group_key
        args: list[Any] = [k(TASK_KEY, group), k(WAITERS_KEY, group), self._ttl,
                           self._events_maxlen, lua_batch(batch), RECENT_LIMIT, "1" if states else ""]
        for entry in scheduled:
            args += [float(entry.due), schedule_member(entry)]
        keys = [k(SCHEDULE_KEY, group), k(EVENTS_KEY, group), k(STATS_KEY, group),
                k(PROCESSING_KEY, group), k(RETRYING_KEY, group), k(RECENT_SUCCESS_KEY, group),
                k(RECENT_FAILED_KEY, group)]
        return self._scripts["record"], keys, args

    def claim(self, claims: Sequence[Claim], alive_after: Optional[float] = None) -> list[str]:
        """Decide every claim of the batch in one script; makes a redelivered task run at
        most once. Liveness is judged inside the script on Redis's clock."""
        if not claims:
            return []
        call = new_task_id()  # tags this call's claims (no os.urandom call per batch)
        # A worker's batch shares one time and worker: their text and the two history
        # entries it may add are made once per (time, worker), not once per claim.
        shared: dict[tuple[float, str], tuple[str, bytes, bytes]] = {}
        batch = []
        for i, c in enumerate(claims):
            when = shared.get((c.timestamp, c.worker))
            if when is None:
                when = shared[c.timestamp, c.worker] = (
                    float_text(c.timestamp), history_entry(PROCESSING, c.timestamp, c.worker),
                    history_entry(REVOKED, c.timestamp, c.worker))
            batch.append([c.task_id, c.name, c.queue, str(int(c.retries)), c.instance, c.worker,
                          when[0], history_entry(QUEUED, c.created, None) if c.created else b"",
                          when[1], when[2], f"{call}:{i}"])
        k = self._group_key
        by_group = self._by_group([c.task_id for c in claims])
        calls: list[Call] = []
        for g, indexes in by_group.items():
            args = [k(TASK_KEY, g), k(WAITERS_KEY, g), k(REVOKED_KEY, g), self._ttl,
                    self._events_maxlen, float_text(self.settings.worker_unresponsive_after),
                    float_text(self._outage_gap), lua_batch([batch[i] for i in indexes])]
            keys = [k(INSTANCES_KEY, g), k(EVENTS_KEY, g), k(STATS_KEY, g),
                    k(PROCESSING_KEY, g), k(RETRYING_KEY, g), k(WATCH_KEY, g)]
            calls.append((self._scripts["claim"], keys, args))
        decisions = [""] * len(claims)
        for indexes, reply in zip(by_group.values(), self._calls("claim", calls)):
            for i, d in zip(indexes, reply):
                decisions[i] = d.decode()
        return decisions

    def get(self, task_ids: Sequence[str]) -> list[Optional[TaskRecord]]:
        if not task_ids:
            return []
        rows: list[Any]
        with unavailable("get"):
            if not self._cluster:
                rows = [as_mapping(row) for row in self._direct(
                    [("HGETALL", self.key(TASK_KEY, t)) for t in task_ids])]
            elif len(task_ids) == 1:
                rows = [self._redis.hgetall(self.key(TASK_KEY, task_ids[0]))]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for t in task_ids:
                    pipe.hgetall(self.key(TASK_KEY, t))
                rows = pipe.execute()
        return [decode_record(t, cast("Mapping[bytes, bytes]", row)) for t, row in zip(task_ids, rows)]

    def states(self, task_ids: Sequence[str]) -> list[Optional[str]]:
        """One script reads every task's ``state`` field: a pipeline of a thousand reads
        (or whole records) costs the client ten to twenty times more."""
        if not task_ids:
            return []
        if self.layout.groups == 1:
            found = self._run("states", [], [self.key(TASK_KEY), *task_ids])
            return [s.decode() if s else None for s in found]
        by_group = self._by_group(task_ids)  # one call per slot group, routed by its stats key
        replies = self._calls("states", [
            (self._scripts["states"], [self._group_key(STATS_KEY, g)],
             [self._group_key(TASK_KEY, g), *(task_ids[i] for i in indexes)])
            for g, indexes in by_group.items()])
        states: list[Optional[str]] = [None] * len(task_ids)
        for indexes, reply in zip(by_group.values(), replies):
            for i, s in zip(indexes, reply):
                states[i] = s.decode() if s else None
        return states

    def wait(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """Block until the task is ready, woken through this instance's inbox channel.

        An outage that starts while waiting is ridden out until ``timeout`` (the inbox
        logs it once lost and once back; reads are retried quietly, at most every
        ``RECONNECT_DELAY_MAX`` seconds): only a backend that cannot be reached at the
        start raises ``BackendUnavailable``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        inbox = self._open_inbox()
        event = inbox.expect(task_id)
        reached = False
        delay = 0.05
        pause: Optional[float]
        try:
            while True:
                event.clear()  # before reading: a notification from now on is not missed
                carried = inbox.carried(task_id)
                if carried is not None:  # the notification brought the ready record
                    ready = _record_of(task_id, carried)
                    if ready is not None and ready.state in READY_STATES:
                        return ready
                try:
                    record: Optional[TaskRecord] = self._watch(task_id, inbox.channel)
                except BackendUnavailable:
                    if not reached:
                        raise
                    record, pause = None, delay
                    delay = min(delay * 2, RECONNECT_DELAY_MAX)
                else:
                    reached, pause, delay = True, None, 0.05
                if record is not None and record.state in READY_STATES:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if pause is not None:
                    remaining = pause if remaining is None else min(pause, remaining)
                event.wait(remaining)
        finally:
            inbox.forget(task_id, event)

    async def wait_async(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """Wait from asyncio code with ``redis.asyncio`` (see ``aio.py``), woken by
        notification through the running loop's own inbox; no thread is used."""
        inbox = await self._async_inbox()
        keys = [self.key(TASK_KEY, task_id), self.key(WAITERS_KEY, task_id)]
        flat = await inbox.wait(task_id, keys, self._ttl, timeout, _ready_reply)
        return None if flat is None else decode_record(task_id, dict(zip(flat[::2], flat[1::2])))

    async def _async_inbox(self) -> AsyncInbox:
        loop = asyncio.get_running_loop()
        inbox = self._async_inboxes.get(loop)
        if inbox is None or not inbox.usable():
            options = with_timeouts(self.settings.backend_options)
            for name in YADTQ_OPTIONS:
                options.pop(name, None)
            options["decode_responses"] = False
            inbox = AsyncInbox(self.url, options, self.key(INBOX_CHANNEL, uuid.uuid4().hex),
                               _lua("watch"))
            self._async_inboxes[loop] = inbox
        return await inbox.ready()

    def _watch(self, task_id: str, channel: str) -> Optional[TaskRecord]:
        keys = [self.key(TASK_KEY, task_id), self.key(WAITERS_KEY, task_id)]
        return _record_of(task_id, self._run("watch", keys, [channel, self._ttl]))

    def _open_inbox(self) -> Inbox:
        with self._inbox_lock:
            if self._inbox is None or not self._inbox.usable():
                channel = self.key(INBOX_CHANNEL, uuid.uuid4().hex + RECORD_INBOX_SUFFIX)
                self._inbox = Inbox(self._redis, channel)
            return self._inbox

    def forget(self, task_ids: Sequence[str]) -> None:
        if not task_ids:
            return
        with unavailable("forget"):
            pipe = self._pipeline()
            for g, indexes in self._by_group(task_ids).items():
                ids = [task_ids[i] for i in indexes]
                for t in ids:  # one key per DEL: a cluster pipeline sends no multi-key DEL
                    pipe.delete(self.key(TASK_KEY, t, g))
                    pipe.delete(self.key(PROGRESS_KEY, t, g))
                pipe.zrem(self._group_key(PROCESSING_KEY, g), *ids)
                pipe.zrem(self._group_key(RETRYING_KEY, g), *ids)
            pipe.execute()

    def revoke(self, task_ids: Sequence[str], timestamp: float) -> None:
        if not task_ids:
            return
        k = self._group_key
        entry = history_entry(REVOKED, timestamp, None)
        calls: list[Call] = []
        for g, indexes in self._by_group(task_ids).items():
            args = [k(TASK_KEY, g), k(WAITERS_KEY, g), k(REVOKED_KEY, g), self._ttl,
                    self._events_maxlen, timestamp, entry, *(task_ids[i] for i in indexes)]
            keys = [k(EVENTS_KEY, g), k(STATS_KEY, g), k(PROCESSING_KEY, g), k(RETRYING_KEY, g)]
            calls.append((self._scripts["revoke"], keys, args))
        self._calls("revoke", calls)

    # -- progress of running tasks
    def record_progress(self, updates: Sequence[Progress]) -> None:
        """One pipelined SET per task (the latest update replaces the earlier one)."""
        if not updates:
            return
        with unavailable("record_progress"):
            pipe = self._redis.pipeline(transaction=False)
            for u in updates:
                pipe.set(self.key(PROGRESS_KEY, u.task_id),
                         packb([u.retries, u.state, u.meta, u.timestamp]), px=self._ttl)
            pipe.execute()

    def get_progress(self, task_ids: Sequence[str]) -> list[Optional[Progress]]:
        if not task_ids:
            return []
        with unavailable("get_progress"):
            pipe = self._redis.pipeline(transaction=False)  # not MGET: keys may be in several slots
            for t in task_ids:
                pipe.get(self.key(PROGRESS_KEY, t))
            rows = cast("list[Optional[bytes]]", pipe.execute())
        found: list[Optional[Progress]] = []
        for task_id, raw in zip(task_ids, rows):
            if raw is None:
                found.append(None)
                continue
            retries, state, meta, timestamp = msgpack.unpackb(raw, raw=False)
            found.append(Progress(task_id, int(retries), state, meta, float(timestamp)))
        return found

    # -- dedupe
    def claim_dedupe(self, key: str, task_id: str, ttl: float) -> str:
        dedupe = self.key(DEDUPE_KEY, key)
        if self.layout.groups == 1:
            winner = self._run("dedupe", [dedupe], [self.key(TASK_KEY), task_id, ms(ttl)])
            return cast(bytes, winner).decode()
        # The earlier task's record may be in another slot: read it, then swap the key
        # only if it still names that task (else look again).
        while True:
            with unavailable("claim_dedupe"):
                raw = cast("Optional[bytes]", self._redis.get(dedupe))
                earlier = raw.decode() if raw is not None else ""
                if earlier:
                    state = self._redis.hget(self.key(TASK_KEY, earlier), "state")
                    if state not in (b"failed", b"revoked"):
                        return earlier
            swapped = self._run("dedupe_swap", [dedupe], [earlier, task_id, ms(ttl)])
            if swapped:
                return task_id

    def release_dedupe(self, key: str, task_id: str) -> None:
        self._run("release_dedupe", [self.key(DEDUPE_KEY, key)], [task_id])

    def close(self) -> None:
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
        try:
            self._redis.close()
        except redis.RedisError as exc:
            logger.debug("closing the redis backend: %s", exc)


