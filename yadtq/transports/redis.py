"""``redis://`` and ``rediss://``: the production result backend.

URL: ``redis://[[user]:password@]host[:port][/db]``; ``rediss://`` for TLS.
``backend_options`` go to ``redis.Redis.from_url`` unchanged, except ``prefix``
(default ``"yadtq"``), which starts every key name below.

Every method is one round trip. Whatever must be atomic runs as a Lua script
from ``lua/`` (``common.lua`` is prepended to each); the scripts mirror the
rules of ``records.py`` and the behaviour of ``memory.py``.

A task record is one hash, ``{prefix}:task:{id}``, with the fields ``state``,
``name``, ``queue``, ``result`` (the packed return value), ``error`` (packed
``[type, message, args, traceback]``), ``retries``, ``worker``, ``instance``,
``eta``, ``history`` (msgpack arrays ``[state, timestamp, worker]``
concatenated, oldest first: appending needs no decoding in Lua), ``claim``
(the token of the granted claim, so a replayed claim script sees its own
grant) and ``started`` (when it last entered ``processing``, for runtimes).
Every write sets its TTL to ``result_expires``.

Waking waiters: each backend instance has one inbox, a pub/sub channel
``{prefix}:inbox:{random}`` with one listener thread. ``wait`` reads the record
and, in the same script, adds its inbox to the set ``{prefix}:waiters:{id}``;
the script that makes the task ready publishes the id to every inbox in that
set. So a notification goes only to processes waiting on that task (no
fan-out of every completion to every client), a wait costs one round trip and
no SUBSCRIBE per call, and any number of waiting threads share one connection.

Monitoring (``snapshot``) reads only indexes and counters that the scripts keep in
the same step as each state change: the sorted sets ``processing`` and
``retrying`` (task id -> when it entered the state), the capped lists
``recent:success`` and ``recent:failed`` and the ``stats`` hash. A refresh costs
the same however many results are stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import msgpack
import redis
from redis.client import PubSub
from redis.commands.core import Script

from ..envelope import pack, unpack
from ..exceptions import BackendUnavailable, ConfigurationError, SerializationError, YADTQError
from ..states import PROCESSING, QUEUED, READY_STATES, REVOKED
from .base import (
    RECENT_LIMIT,
    SUMMARY_MESSAGE_LIMIT,
    BackendSnapshot,
    Claim,
    ErrorInfo,
    Message,
    Progress,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    TaskSummary,
    WorkerFailure,
    WorkerInfo,
)
from .records import summarize_scheduled, totals_from
from .redis_aio import AsyncInbox

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "yadtq"
# Key names, each after "{prefix}:". Those ending in ":" are followed by an id.
TASK_KEY = "task:"  # hash: the task record
REVOKED_KEY = "revoked:"  # string: revoke timestamp; TTL result_expires
WAITERS_KEY = "waiters:"  # set: inbox channels of processes waiting on the task
DEDUPE_KEY = "dedupe:"  # string: the task id that holds the dedupe key; TTL given
INBOX_CHANNEL = "inbox:"  # pub/sub channel of one backend instance; messages are task ids
SCHEDULE_KEY = "schedule"  # sorted set: packed entry -> due
LEASED_KEY = "schedule:leased"  # sorted set: packed entry -> lease deadline
WORKERS_KEY = "workers"  # hash: worker name -> packed WorkerInfo
WORKER_INSTANCE_KEY = "workers:instance"  # hash: worker name -> its current instance
INSTANCES_KEY = "instances"  # hash: instance of a running worker -> last heartbeat
FAILURES_KEY = "failures"  # list: packed worker failures, newest first
STATS_KEY = "stats"  # hash: succeeded, failed, retried, revoked, dead_lettered totals
PROCESSING_KEY = "processing"  # sorted set: id of a task processing -> when it started
RETRYING_KEY = "retrying"  # sorted set: id of a task retrying -> when its attempt failed
RECENT_SUCCESS_KEY = "recent:success"  # list: packed latest successes, newest first
RECENT_FAILED_KEY = "recent:failed"  # list: packed latest failures, newest first
PROGRESS_KEY = "progress:"  # string: packed [retries, state, meta, timestamp]; TTL result_expires
EVENTS_KEY = "events"  # stream: one entry per state change (id, name, state, worker, ts)
EVENTS_MAXLEN = 10_000

#: Seconds the inbox listener blocks on its connection before looking at its stop flag.
LISTEN_TIMEOUT = 1.0
#: Seconds to wait for a SUBSCRIBE confirmation.
SUBSCRIBE_TIMEOUT = 5.0
RECONNECT_DELAY_MAX = 2.0

_LUA_DIR = Path(__file__).parent / "lua"
_SCRIPTS = ("record", "claim", "revoke", "watch", "claim_due", "heartbeat", "failure", "dedupe",
            "snapshot")
_WORKER_FIELDS = frozenset(f.name for f in dataclasses.fields(WorkerInfo))


@cache
def _lua(name: str) -> str:
    return (_LUA_DIR / "common.lua").read_text() + "\n" + (_LUA_DIR / f"{name}.lua").read_text()


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """Translate redis-py's exceptions at the edge (redis-py reconnects on the next command)."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendUnavailable(f"redis backend: {what} failed: {exc}") from exc


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _history_entry(state: str, timestamp: float, worker: Optional[str]) -> bytes:
    return _packb([state, timestamp, worker])


def _pack_error(error: ErrorInfo) -> bytes:
    try:
        return pack([error.type, error.message, error.args, error.traceback])
    except SerializationError:
        logger.debug("error args of type %s cannot be stored; keeping the message", error.type)
        return pack([error.type, error.message, (error.message,), error.traceback])


def _lua_batch(items: list[list[Any]]) -> bytes:
    """One script argument for a whole batch, decoded in Lua by ``cmsgpack.unpack``.

    Much cheaper for the client than one argument per field. Items hold only str,
    bytes and int: Redis's cmsgpack reads no bin type (hence ``use_bin_type=False``,
    bytes travel as raw strings) and Lua would round floats, so those go as text.
    """
    return msgpack.packb(items, use_bin_type=False)  # type: ignore[no-any-return]


def _float_text(value: float) -> str:
    return repr(float(value))


def _change_fields(change: StateChange) -> list[Any]:
    """Field/value pairs a change sets besides ``state`` and ``history`` (``None``: keep)."""
    fields: list[Any] = []
    for name in ("name", "queue", "result", "worker"):
        value = getattr(change, name)
        if value is not None:
            fields += [name, value]
    if change.retries is not None:
        fields += ["retries", str(int(change.retries))]
    if change.eta is not None:
        fields += ["eta", _float_text(change.eta)]
    if change.error is not None:
        fields += ["error", _pack_error(change.error)]
    return fields


def _text(fields: Mapping[bytes, bytes], name: bytes) -> Optional[str]:
    value = fields.get(name)
    return None if value is None else value.decode()


def _decode_record(task_id: str, fields: Mapping[bytes, bytes]) -> Optional[TaskRecord]:
    state = fields.get(b"state")
    if state is None:
        return None
    error = None
    if b"error" in fields:
        type_name, message, args, traceback = unpack(fields[b"error"])
        error = ErrorInfo(type_name, message, args, traceback)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(fields.get(b"history", b""))
    eta = fields.get(b"eta")
    return TaskRecord(
        task_id=task_id,
        state=state.decode(),
        name=_text(fields, b"name"),
        queue=_text(fields, b"queue"),
        result=fields.get(b"result"),
        error=error,
        retries=int(fields.get(b"retries", b"0")),
        worker=_text(fields, b"worker"),
        eta=None if eta is None else float(eta),
        instance=_text(fields, b"instance"),
        history=tuple((s, float(ts), w) for s, ts, w in unpacker),
    )


def _ready_reply(flat: list[Any]) -> bool:
    """Whether a ``watch`` reply (``HGETALL`` pairs) holds a ready state."""
    fields = dict(zip(flat[::2], flat[1::2]))
    state = fields.get(b"state")
    return state is not None and state.decode() in READY_STATES


def _schedule_member(entry: ScheduledMessage) -> bytes:
    """The schedule's member for an entry: it carries everything, so a leased one is rebuilt."""
    m = entry.message
    return _packb([entry.task_id, float(entry.due), m.queue, m.body, m.key, dict(m.headers)])


def _decode_member(member: bytes) -> ScheduledMessage:
    task_id, due, queue, body, key, headers = msgpack.unpackb(member, raw=False)
    return ScheduledMessage(task_id, due, Message(queue, body, key, headers))


def _optional(raw: bytes) -> Optional[str]:
    return raw.decode(errors="replace") if raw else None


def _indexed_summary(row: Sequence[bytes]) -> TaskSummary:
    """A row of ``snapshot.lua``'s index listing: ``[id, since, name, worker, queue]``."""
    task_id, since, name, worker, queue = row
    return TaskSummary(task_id=task_id.decode(), name=_optional(name), worker=_optional(worker),
                       queue=_optional(queue), timestamp=float(since))


def _finished_summary(raw: bytes) -> TaskSummary:
    """An entry of a recent list (``record.lua``): ``[id, name, worker, queue, finished,
    started, error type, error message]``, as Lua's cmsgpack packs strings."""
    task_id, name, worker, queue, finished, started, error_type, message = msgpack.unpackb(raw, raw=True)
    return TaskSummary(
        task_id=task_id.decode(), name=_optional(name), worker=_optional(worker),
        queue=_optional(queue), timestamp=float(finished),
        runtime=max(0.0, float(finished) - float(started)) if started else None,
        error_type=_optional(error_type),
        error_message=message.decode(errors="replace") if error_type else None,
    )


def _decode_worker(raw: bytes) -> WorkerInfo:
    data = {k: v for k, v in unpack(raw).items() if k in _WORKER_FIELDS}
    data["queues"] = tuple(data.get("queues", ()))
    return WorkerInfo(**data)


class RedisBackend(ResultBackend):
    """Task state, results, the schedule, heartbeats and dedupe keys in Redis."""

    scheme = "redis"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        options = dict(settings.backend_options)
        self.prefix = str(options.pop("prefix", DEFAULT_PREFIX))
        options["decode_responses"] = False
        try:
            self._redis = redis.Redis.from_url(url, **options)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad redis backend URL or options ({url!r}): {exc}") from exc
        self._ttl = _ms(settings.result_expires)
        self._scripts: dict[str, Script] = {n: self._redis.register_script(_lua(n)) for n in _SCRIPTS}
        self._inbox: Optional[_Inbox] = None
        self._inbox_lock = threading.Lock()
        #: One inbox per event loop that waits (``wait_async``).
        self._async_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncInbox] = (
            weakref.WeakKeyDictionary())

    def key(self, name: str, suffix: str = "") -> str:
        """The full name of key ``name`` (a ``*_KEY`` constant), followed by ``suffix``."""
        return f"{self.prefix}:{name}{suffix}"

    def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with _unavailable(script):
            return self._scripts[script](keys=keys, args=args)

    # -- states and results
    def record(self, changes: Sequence[StateChange],
               scheduled: Sequence[ScheduledMessage] = ()) -> None:
        """Store the batch and the schedule entries in one script: all or nothing.

        Recording ``retrying`` with its scheduled retry in one step is what keeps a
        crash from losing the retry (DESIGN.md section 4).
        """
        if not changes and not scheduled:
            return
        batch = [[c.task_id, c.state, _float_text(c.timestamp), c.worker or "", c.name or "",
                  _history_entry(c.state, c.timestamp, c.worker), _change_fields(c), c.queue or "",
                  c.error.type if c.error else "",
                  c.error.message[:SUMMARY_MESSAGE_LIMIT] if c.error else "",
                  "1" if c.dead_lettered else ""] for c in changes]
        args: list[Any] = [self.key(TASK_KEY), self.key(WAITERS_KEY), self._ttl, EVENTS_MAXLEN,
                           _lua_batch(batch), RECENT_LIMIT]
        for entry in scheduled:
            args += [float(entry.due), _schedule_member(entry)]
        keys = [self.key(SCHEDULE_KEY), self.key(EVENTS_KEY), self.key(STATS_KEY),
                self.key(PROCESSING_KEY), self.key(RETRYING_KEY), self.key(RECENT_SUCCESS_KEY),
                self.key(RECENT_FAILED_KEY)]
        self._run("record", keys, args)

    def claim(self, claims: Sequence[Claim], alive_after: float) -> list[str]:
        """Decide every claim of the batch in one script; makes a redelivered task run at most once."""
        if not claims:
            return []
        call = uuid.uuid4().hex
        batch = [[c.task_id, c.name, c.queue, str(int(c.retries)), c.instance, c.worker,
                  _float_text(c.timestamp),
                  _history_entry(QUEUED, c.created, None) if c.created else b"",
                  _history_entry(PROCESSING, c.timestamp, c.worker),
                  _history_entry(REVOKED, c.timestamp, c.worker),
                  f"{call}:{i}"] for i, c in enumerate(claims)]
        args = [self.key(TASK_KEY), self.key(WAITERS_KEY), self.key(REVOKED_KEY), self._ttl,
                EVENTS_MAXLEN, alive_after, _lua_batch(batch)]
        keys = [self.key(INSTANCES_KEY), self.key(EVENTS_KEY), self.key(STATS_KEY),
                self.key(PROCESSING_KEY), self.key(RETRYING_KEY)]
        return [d.decode() for d in self._run("claim", keys, args)]

    def get(self, task_ids: Sequence[str]) -> list[Optional[TaskRecord]]:
        if not task_ids:
            return []
        with _unavailable("get"):
            if len(task_ids) == 1:
                rows = [self._redis.hgetall(self.key(TASK_KEY, task_ids[0]))]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for t in task_ids:
                    pipe.hgetall(self.key(TASK_KEY, t))
                rows = pipe.execute()
        return [_decode_record(t, cast("Mapping[bytes, bytes]", row)) for t, row in zip(task_ids, rows)]

    def wait(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """Block until the task is ready, woken through this instance's inbox channel."""
        deadline = None if timeout is None else time.monotonic() + timeout
        inbox = self._open_inbox()
        event = inbox.expect(task_id)
        try:
            while True:
                event.clear()  # before reading: a notification from now on is not missed
                record = self._watch(task_id, inbox.channel)
                if record is not None and record.state in READY_STATES:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                event.wait(remaining)
        finally:
            inbox.forget(task_id, event)

    async def wait_async(self, task_id: str, timeout: Optional[float]) -> Optional[TaskRecord]:
        """Wait from asyncio code with ``redis.asyncio`` (see ``redis_aio.py``), woken by
        notification through the running loop's own inbox; no thread is used."""
        inbox = await self._async_inbox()
        keys = [self.key(TASK_KEY, task_id), self.key(WAITERS_KEY, task_id)]
        flat = await inbox.wait(task_id, keys, self._ttl, timeout, _ready_reply)
        return None if flat is None else _decode_record(task_id, dict(zip(flat[::2], flat[1::2])))

    async def _async_inbox(self) -> AsyncInbox:
        loop = asyncio.get_running_loop()
        inbox = self._async_inboxes.get(loop)
        if inbox is None or not inbox.usable():
            options = dict(self.settings.backend_options)
            options.pop("prefix", None)
            options["decode_responses"] = False
            inbox = AsyncInbox(self.url, options, self.key(INBOX_CHANNEL, uuid.uuid4().hex),
                               _lua("watch"))
            self._async_inboxes[loop] = inbox
            await inbox.open()
        return inbox

    def _watch(self, task_id: str, channel: str) -> Optional[TaskRecord]:
        keys = [self.key(TASK_KEY, task_id), self.key(WAITERS_KEY, task_id)]
        flat = self._run("watch", keys, [channel, self._ttl])
        return _decode_record(task_id, dict(zip(flat[::2], flat[1::2])))

    def _open_inbox(self) -> _Inbox:
        with self._inbox_lock:
            if self._inbox is None or not self._inbox.usable():
                channel = self.key(INBOX_CHANNEL, uuid.uuid4().hex)
                self._inbox = _Inbox(self._redis, channel)
            return self._inbox

    def forget(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            with _unavailable("forget"):
                pipe = self._redis.pipeline(transaction=True)
                pipe.delete(*(self.key(TASK_KEY, t) for t in task_ids))
                pipe.delete(*(self.key(PROGRESS_KEY, t) for t in task_ids))
                pipe.zrem(self.key(PROCESSING_KEY), *task_ids)
                pipe.zrem(self.key(RETRYING_KEY), *task_ids)
                pipe.execute()

    def revoke(self, task_ids: Sequence[str], timestamp: float) -> None:
        if not task_ids:
            return
        args = [self.key(TASK_KEY), self.key(WAITERS_KEY), self.key(REVOKED_KEY), self._ttl,
                EVENTS_MAXLEN, timestamp, _history_entry(REVOKED, timestamp, None), *task_ids]
        keys = [self.key(EVENTS_KEY), self.key(STATS_KEY), self.key(PROCESSING_KEY),
                self.key(RETRYING_KEY)]
        self._run("revoke", keys, args)

    # -- progress of running tasks
    def record_progress(self, updates: Sequence[Progress]) -> None:
        """One pipelined SET per task (the latest update replaces the earlier one)."""
        if not updates:
            return
        with _unavailable("record_progress"):
            pipe = self._redis.pipeline(transaction=False)
            for u in updates:
                pipe.set(self.key(PROGRESS_KEY, u.task_id),
                         _packb([u.retries, u.state, u.meta, u.timestamp]), px=self._ttl)
            pipe.execute()

    def get_progress(self, task_ids: Sequence[str]) -> list[Optional[Progress]]:
        if not task_ids:
            return []
        with _unavailable("get_progress"):
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

    # -- schedule
    def claim_due(self, now: float, limit: int, lease: float) -> list[ScheduledMessage]:
        if limit <= 0:
            return []
        keys = [self.key(SCHEDULE_KEY), self.key(LEASED_KEY)]
        return [_decode_member(m) for m in self._run("claim_due", keys, [now, limit, now + lease])]

    def release_due(self, entries: Sequence[ScheduledMessage]) -> None:
        if not entries:
            return
        members = [_schedule_member(e) for e in entries]
        with _unavailable("release_due"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(self.key(LEASED_KEY), *members)
            pipe.zrem(self.key(SCHEDULE_KEY), *members)
            pipe.execute()

    def next_due(self) -> Optional[float]:
        """The lowest due of the schedule; leased entries are left out."""
        with _unavailable("next_due"):
            first = cast("list[Any]", self._redis.zrange(self.key(SCHEDULE_KEY), 0, 0, withscores=True))
        return float(first[0][1]) if first else None

    # -- workers
    def heartbeat(self, info: WorkerInfo) -> None:
        keys = [self.key(WORKERS_KEY), self.key(WORKER_INSTANCE_KEY), self.key(INSTANCES_KEY)]
        args = [info.worker, info.instance, info.state, info.last_heartbeat, pack(dataclasses.asdict(info))]
        self._run("heartbeat", keys, args)

    def workers(self) -> list[WorkerInfo]:
        with _unavailable("workers"):
            rows = cast("list[bytes]", self._redis.hvals(self.key(WORKERS_KEY)))
        found = []
        for raw in rows:
            try:
                found.append(_decode_worker(raw))
            except (YADTQError, TypeError, ValueError, AttributeError) as exc:
                logger.warning("skipping an unreadable worker report: %s", exc)
        return found

    def record_failure(self, failure: WorkerFailure) -> None:
        if self.settings.failure_history <= 0:
            return
        packed = _packb([failure.worker, failure.instance, failure.last_heartbeat, failure.detected])
        self._run("failure", [self.key(FAILURES_KEY)],
                  [failure.instance, packed, self.settings.failure_history])

    def failures(self, limit: int = 100) -> list[WorkerFailure]:
        if limit <= 0:
            return []
        with _unavailable("failures"):
            rows = cast("list[bytes]", self._redis.lrange(self.key(FAILURES_KEY), 0, limit - 1))
        return [WorkerFailure(*msgpack.unpackb(raw, raw=False)) for raw in rows]

    # -- monitoring
    def snapshot(self, limit: int = RECENT_LIMIT) -> BackendSnapshot:
        """One script reading the indexes, lists and counters (see the module docstring)."""
        limit = max(limit, 0)
        keys = [self.key(PROCESSING_KEY), self.key(RETRYING_KEY), self.key(SCHEDULE_KEY),
                self.key(LEASED_KEY), self.key(STATS_KEY), self.key(RECENT_SUCCESS_KEY),
                self.key(RECENT_FAILED_KEY)]
        stale = time.time() - self.settings.result_expires
        args = [self.key(TASK_KEY), limit, min(limit, RECENT_LIMIT), _float_text(stale)]
        (processing, retrying, scheduled, stats, in_progress, waiting, due, successes,
         failures) = self._run("snapshot", keys, args)
        counters = {k.decode(): int(v) for k, v in zip(stats[::2], stats[1::2])}
        return BackendSnapshot(
            processing=int(processing), retrying=int(retrying), scheduled=int(scheduled),
            totals=totals_from(counters),
            processing_tasks=tuple(_indexed_summary(row) for row in in_progress),
            retrying_tasks=tuple(_indexed_summary(row) for row in waiting),
            scheduled_tasks=tuple(summarize_scheduled(_decode_member(m)) for m in due[::2]),
            recent_successes=tuple(_finished_summary(raw) for raw in successes),
            recent_failures=tuple(_finished_summary(raw) for raw in failures),
        )

    # -- dedupe
    def claim_dedupe(self, key: str, task_id: str, ttl: float) -> str:
        winner = self._run("dedupe", [self.key(DEDUPE_KEY, key)], [self.key(TASK_KEY), task_id, _ms(ttl)])
        return cast(bytes, winner).decode()

    def close(self) -> None:
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
        try:
            self._redis.close()
        except redis.RedisError as exc:
            logger.debug("closing the redis backend: %s", exc)


class _Inbox:
    """One backend instance's pub/sub channel, and the one thread that listens on it.

    Messages are task ids; the listener sets the events of the threads waiting on
    them. After a reconnect, notifications may have been lost, so every waiter is
    woken to read its record again (and register anew).
    """

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.channel = channel
        self.pid = os.getpid()
        self._client = client
        self._lock = threading.Lock()
        self._events: dict[str, list[threading.Event]] = {}
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

    def forget(self, task_id: str, event: threading.Event) -> None:
        with self._lock:
            events = self._events.get(task_id, [])
            if event in events:
                events.remove(event)
            if not events:
                self._events.pop(task_id, None)

    def close(self) -> None:
        self._closed.set()
        with suppress(redis.RedisError):  # wake the listener now rather than after LISTEN_TIMEOUT
            self._client.publish(self.channel, b"")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(LISTEN_TIMEOUT + 1.0)

    def _subscribe(self) -> PubSub:
        """A pub/sub connection subscribed to the channel, confirmed by the server.

        Waiters register the channel only after this returns, so no notification
        can be published to it before the subscription is in place.
        """
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
        delay = 0.05
        pubsub = self._pubsub
        while not self._closed.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    logger.info("redis backend: resubscribed to %s", self.channel)
                    self._wake_all()
                    delay = 0.05
                message = pubsub.get_message(timeout=LISTEN_TIMEOUT)
            except Exception as exc:  # the listener must outlive any connection fault
                if self._closed.is_set():
                    break
                logger.warning("redis backend: notification listener: %s; reconnecting", exc)
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                self._closed.wait(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX)
                continue
            if message is None:
                continue
            if message["type"] == "message":
                self._wake(message["data"].decode())
            elif message["type"] == "subscribe":  # redis-py reconnected and resubscribed
                self._wake_all()
        if pubsub is not None:
            _close_quietly(pubsub)

    def _wake(self, task_id: str) -> None:
        with self._lock:
            for event in self._events.get(task_id, ()):
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
