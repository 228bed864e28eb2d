"""``RedisBackend``: the backend's methods, each one round trip (see the package docstring)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import msgpack
import redis
from redis.commands.core import Script

from ...envelope import pack
from ...exceptions import BackendUnavailable, ConfigurationError, YADTQError
from ...namespace import Naming
from ...states import PROCESSING, QUEUED, READY_STATES, REVOKED
from ..base import (
    RECENT_LIMIT,
    SUMMARY_MESSAGE_LIMIT,
    BackendSnapshot,
    Claim,
    Progress,
    ResultBackend,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    WorkerFailure,
    WorkerInfo,
)
from ..records import OUTAGE_INTERVALS, PRUNE_BATCH, Watch, silence, summarize_scheduled, totals_from
from .aio import AsyncInbox
from .canvas import RedisCanvas
from .codec import (
    change_fields,
    decode_member,
    decode_record,
    decode_worker,
    finished_summary,
    float_text,
    history_entry,
    indexed_summary,
    lua_batch,
    ms,
    packb,
    schedule_member,
)
from .details import RedisDetails
from .inbox import RECONNECT_DELAY_MAX, Inbox
from .keys import (
    DEDUPE_KEY,
    EVENTS_KEY,
    EVENTS_MAXLEN,
    FAILURES_KEY,
    INBOX_CHANNEL,
    INSTANCES_KEY,
    LEASED_KEY,
    PROCESSING_KEY,
    PROGRESS_KEY,
    RECENT_FAILED_KEY,
    RECENT_SUCCESS_KEY,
    RETRYING_KEY,
    REVOKED_KEY,
    SCHEDULE_KEY,
    STATS_KEY,
    TASK_KEY,
    WAITERS_KEY,
    WATCH_KEY,
    WORKER_INSTANCE_KEY,
    WORKERS_KEY,
    WORKERS_SEEN_KEY,
)
from .limits import RedisLimits
from .operations import RedisOperations
from .periodic import RedisPeriodic
from .slots import RedisSlots

if TYPE_CHECKING:
    from ...settings import Settings

logger = logging.getLogger(__name__)

_SCRIPT_DIR = Path(__file__).parent / "scripts"
_SCRIPTS = ("record", "claim", "revoke", "watch", "claim_due", "heartbeat", "workers", "failure",
            "dedupe", "release_dedupe", "snapshot", "states")


#: Seconds a reply may take (``socket_timeout``) and a connection may take to open
#: (``socket_connect_timeout``) unless ``backend_options`` say otherwise: without them a
#: Redis that stops answering (a hung server, a dropped route) hangs clients and workers
#: forever; with them the call raises ``BackendUnavailable`` and is retried.
SOCKET_TIMEOUT = 10.0
SOCKET_CONNECT_TIMEOUT = 5.0


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


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """Translate redis-py's exceptions at the edge (redis-py reconnects on the next command)."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendUnavailable(f"redis backend: {what} failed: {exc}") from exc


def _ready_reply(flat: list[Any]) -> bool:
    """Whether a ``watch`` reply (``HGETALL`` pairs) holds a ready state."""
    fields = dict(zip(flat[::2], flat[1::2]))
    state = fields.get(b"state")
    return state is not None and state.decode() in READY_STATES


class RedisBackend(RedisOperations, RedisPeriodic, RedisCanvas, RedisLimits, RedisSlots,
                   RedisDetails, ResultBackend):
    """Task state, results, the schedule, heartbeats and dedupe keys in Redis."""

    scheme = "redis"
    #: How the canvas steps (canvas.py) translate redis-py's exceptions.
    _guard = staticmethod(_unavailable)

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        options = with_timeouts(settings.backend_options)
        # The app's namespace; an explicit ``prefix`` option still wins.
        self.prefix = str(options.pop("prefix", Naming.of(settings).redis_prefix))
        options["decode_responses"] = False
        try:
            self._redis = redis.Redis.from_url(url, **options)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad redis backend URL or options ({url!r}): {exc}") from exc
        self._ttl = ms(settings.result_expires)
        #: Seconds with no heartbeat from anyone that make an outage (records.Watch).
        self._outage_gap = OUTAGE_INTERVALS * settings.heartbeat_interval
        self._scripts: dict[str, Script] = {n: self._redis.register_script(_lua(n)) for n in _SCRIPTS}
        self._inbox: Optional[Inbox] = None
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
        script, keys, args = self._record_call(changes, scheduled)
        with _unavailable("record"):
            script(keys=keys, args=args)

    def _record_call(self, changes: Sequence[StateChange],
                     scheduled: Sequence[ScheduledMessage]) -> tuple[Script, list[str], list[Any]]:
        """The record script with its keys and arguments (also run by ``record_joined``)."""
        batch = [[c.task_id, c.state, float_text(c.timestamp), c.worker or "", c.name or "",
                  history_entry(c.state, c.timestamp, c.worker), change_fields(c), c.queue or "",
                  c.error.type if c.error else "",
                  c.error.message[:SUMMARY_MESSAGE_LIMIT] if c.error else "",
                  "1" if c.dead_lettered else "", "1" if c.undelivered else ""] for c in changes]
        args: list[Any] = [self.key(TASK_KEY), self.key(WAITERS_KEY), self._ttl, EVENTS_MAXLEN,
                           lua_batch(batch), RECENT_LIMIT]
        for entry in scheduled:
            args += [float(entry.due), schedule_member(entry)]
        keys = [self.key(SCHEDULE_KEY), self.key(EVENTS_KEY), self.key(STATS_KEY),
                self.key(PROCESSING_KEY), self.key(RETRYING_KEY), self.key(RECENT_SUCCESS_KEY),
                self.key(RECENT_FAILED_KEY)]
        return self._scripts["record"], keys, args

    def claim(self, claims: Sequence[Claim], alive_after: Optional[float] = None) -> list[str]:
        """Decide every claim of the batch in one script; makes a redelivered task run at
        most once. Liveness is judged inside the script on Redis's clock."""
        if not claims:
            return []
        call = uuid.uuid4().hex
        batch = [[c.task_id, c.name, c.queue, str(int(c.retries)), c.instance, c.worker,
                  float_text(c.timestamp),
                  history_entry(QUEUED, c.created, None) if c.created else b"",
                  history_entry(PROCESSING, c.timestamp, c.worker),
                  history_entry(REVOKED, c.timestamp, c.worker),
                  f"{call}:{i}"] for i, c in enumerate(claims)]
        args = [self.key(TASK_KEY), self.key(WAITERS_KEY), self.key(REVOKED_KEY), self._ttl,
                EVENTS_MAXLEN, float_text(self.settings.worker_unresponsive_after),
                float_text(self._outage_gap), lua_batch(batch)]
        keys = [self.key(INSTANCES_KEY), self.key(EVENTS_KEY), self.key(STATS_KEY),
                self.key(PROCESSING_KEY), self.key(RETRYING_KEY), self.key(WATCH_KEY)]
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
        return [decode_record(t, cast("Mapping[bytes, bytes]", row)) for t, row in zip(task_ids, rows)]

    def states(self, task_ids: Sequence[str]) -> list[Optional[str]]:
        """One script reads every task's ``state`` field: a pipeline of a thousand reads
        (or whole records) costs the client ten to twenty times more."""
        if not task_ids:
            return []
        found = self._run("states", [], [self.key(TASK_KEY), *task_ids])
        return [s.decode() if s else None for s in found]

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
            options.pop("prefix", None)
            options["decode_responses"] = False
            inbox = AsyncInbox(self.url, options, self.key(INBOX_CHANNEL, uuid.uuid4().hex),
                               _lua("watch"))
            self._async_inboxes[loop] = inbox
        return await inbox.ready()

    def _watch(self, task_id: str, channel: str) -> Optional[TaskRecord]:
        keys = [self.key(TASK_KEY, task_id), self.key(WAITERS_KEY, task_id)]
        flat = self._run("watch", keys, [channel, self._ttl])
        return decode_record(task_id, dict(zip(flat[::2], flat[1::2])))

    def _open_inbox(self) -> Inbox:
        with self._inbox_lock:
            if self._inbox is None or not self._inbox.usable():
                channel = self.key(INBOX_CHANNEL, uuid.uuid4().hex)
                self._inbox = Inbox(self._redis, channel)
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
                EVENTS_MAXLEN, timestamp, history_entry(REVOKED, timestamp, None), *task_ids]
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
                         packb([u.retries, u.state, u.meta, u.timestamp]), px=self._ttl)
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
    def claim_due(self, now: Optional[float], limit: int, lease: float) -> list[ScheduledMessage]:
        """Lease due entries in one script; ``now`` ``None`` means Redis's clock (``TIME``)."""
        if limit <= 0:
            return []
        keys = [self.key(SCHEDULE_KEY), self.key(LEASED_KEY)]
        args = ["" if now is None else float_text(now), limit, float_text(lease)]
        return [decode_member(m) for m in self._run("claim_due", keys, args)]

    def release_due(self, entries: Sequence[ScheduledMessage]) -> None:
        if not entries:
            return
        members = [schedule_member(e) for e in entries]
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
        """Store the report, stamped with Redis's clock, move the watch on and prune at
        most ``PRUNE_BATCH`` workers not heard from for ``worker_retention``: one script."""
        keys = [self.key(WORKERS_KEY), self.key(WORKER_INSTANCE_KEY), self.key(INSTANCES_KEY),
                self.key(WORKERS_SEEN_KEY), self.key(WATCH_KEY)]
        args = [info.worker, info.instance, info.state, pack(dataclasses.asdict(info)),
                "1" if info.resumed else "", float_text(self.settings.worker_retention), PRUNE_BATCH]
        self._run("heartbeat", keys, args)

    def workers(self) -> list[WorkerInfo]:
        """Every report, with when Redis last heard from each worker and its silence."""
        keys = [self.key(WORKERS_KEY), self.key(WORKERS_SEEN_KEY), self.key(WATCH_KEY)]
        now, since, last, reports, seen = self._run("workers", keys, [])
        watch = Watch(float(now), float(since or 0), float(last or 0))
        heard = {name: float(at) for name, at in zip(seen[::2], seen[1::2])}
        found = []
        for name, raw in zip(reports[::2], reports[1::2]):
            try:
                info = decode_worker(raw)
            except (YADTQError, TypeError, ValueError, AttributeError) as exc:
                logger.warning("skipping an unreadable worker report: %s", exc)
                continue
            at = heard.get(name, info.last_heartbeat)
            found.append(dataclasses.replace(info, last_heartbeat=at, silent=silence(at, watch)))
        return found

    def time(self) -> float:
        """Redis's clock (``TIME``)."""
        with _unavailable("time"):
            seconds, micros = self._redis.time()
        return seconds + micros / 1e6

    def record_failure(self, failure: WorkerFailure) -> None:
        if self.settings.failure_history <= 0:
            return
        packed = packb([failure.worker, failure.instance, failure.last_heartbeat, failure.detected])
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
        args = [self.key(TASK_KEY), limit, min(limit, RECENT_LIMIT),
                float_text(self.settings.result_expires)]
        (processing, retrying, scheduled, stats, in_progress, waiting, due, successes,
         failures) = self._run("snapshot", keys, args)
        counters = {k.decode(): int(v) for k, v in zip(stats[::2], stats[1::2])}
        return BackendSnapshot(
            processing=int(processing), retrying=int(retrying), scheduled=int(scheduled),
            totals=totals_from(counters),
            processing_tasks=tuple(indexed_summary(row) for row in in_progress),
            retrying_tasks=tuple(indexed_summary(row) for row in waiting),
            scheduled_tasks=tuple(summarize_scheduled(decode_member(m)) for m in due[::2]),
            recent_successes=tuple(finished_summary(raw) for raw in successes),
            recent_failures=tuple(finished_summary(raw) for raw in failures),
        )

    # -- dedupe
    def claim_dedupe(self, key: str, task_id: str, ttl: float) -> str:
        winner = self._run("dedupe", [self.key(DEDUPE_KEY, key)], [self.key(TASK_KEY), task_id, ms(ttl)])
        return cast(bytes, winner).decode()

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


