"""The Redis backend's concurrency slots (``ConcurrencyBackend`` in slots_store.py):
``slots.lua``, one script per step, with the key layout described at its top (the
names are in ``keys.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import msgpack
import redis
from redis.commands.core import Script

from ..slots_store import (
    PROMOTED_TTL,
    SWEEP_BATCH,
    ConcurrencyBackend,
    SlotHolder,
    SlotKeyInfo,
    SlotRequest,
    split_attempt,
)
from .codec import float_text, schedule_member_parts
from .keys import (
    INSTANCES_KEY,
    SCHEDULE_KEY,
    SLOT_HELD_KEY,
    SLOT_KEYS_KEY,
    SLOT_MESSAGES_KEY,
    SLOT_QUEUE_KEY,
    SLOT_SEQ_KEY,
    SLOT_SWEEP_KEY,
    TASK_KEY,
    WATCH_KEY,
)
from .layout import HOME, Layout

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ...settings import Settings

_SCRIPT_DIR = Path(__file__).parent / "scripts"
#: Waiting tasks per key whose records a Redis Cluster step reads (those after them
#: count as not over: promoted, they are dropped when their worker's claim refuses);
#: ``LOOK`` in slots.lua.
_RECORDS_WAITING = 16
#: No records passed (a Redis Cluster release): every holder counts as live.
_NO_RECORDS = msgpack.packb({})


@cache
def _slots_source() -> str:
    return (_SCRIPT_DIR / "common.lua").read_text() + "\n" + (_SCRIPT_DIR / "slots.lua").read_text()


class RedisSlots(ConcurrencyBackend):
    """Mixed into ``RedisBackend``; uses its connection, key names and liveness window.

    All keys of one limit key (held, queue, messages) and the indexes its script
    touches (the key list, the sweep order, the schedule, the liveness hash) are in the
    slot group of the limit key (``layout.py``). On one server the script reads the
    task records it needs itself; on Redis Cluster they are in other slots, so they
    are read first and passed in (``slots.lua``): an acquire that finds the key full
    asks again with its holders' records, a release hands on only the slot it frees,
    and the sweep reads the records of the keys it settles.
    """

    _redis: redis.Redis
    _outage_gap: float
    settings: Settings
    layout: Layout

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        raise NotImplementedError

    def _calls(self, what: str, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        raise NotImplementedError

    def _guard(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _slots_call(self, op: str, group: int, records: bytes,
                    args: list[Any]) -> tuple[Script, list[str], list[Any]]:
        script: Optional[Script] = getattr(self, "_slots_script", None)
        if script is None:
            script = self._redis.register_script(_slots_source())
            self._slots_script = script
        k = self.key
        keys = [k(SCHEDULE_KEY, group=group), k(INSTANCES_KEY, group=group),
                k(WATCH_KEY, group=group), k(SLOT_KEYS_KEY, group=group),
                k(SLOT_SWEEP_KEY, group=group), k(SLOT_SEQ_KEY, group=group)]
        head = [op, k(SLOT_HELD_KEY, group=group), k(SLOT_QUEUE_KEY, group=group),
                k(SLOT_MESSAGES_KEY, group=group), k(TASK_KEY),
                float_text(self.settings.worker_unresponsive_after),
                float_text(self._outage_gap), float_text(PROMOTED_TTL), records]
        return script, keys, head + args

    def _slots(self, op: str, args: list[Any]) -> Any:
        """One step on one server (one slot group): the script reads the records."""
        script, keys, full = self._slots_call(op, HOME, b"", args)
        with self._guard(f"{op}_slots"):
            return script(keys=keys, args=full)

    def _slot_attempts(self, group: int, keys: Sequence[str]) -> list[bytes]:
        """Redis Cluster: the attempts holding or first in line for a slot of ``keys``
        (all in ``group``)."""
        if not keys:
            return []
        with self._guard("slot_attempts"):
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.hkeys(self.key(SLOT_HELD_KEY, key, group=group))
                pipe.zrange(self.key(SLOT_QUEUE_KEY, key, group=group), 0, _RECORDS_WAITING - 1)
            return [a for row in pipe.execute() for a in row]

    def _slot_records(self, attempts: Sequence[bytes]) -> bytes:
        """Redis Cluster: the records (state, retries, running instance) of the tasks of
        ``attempts``, packed for ``slots.lua``. Read before the script, so possibly
        stale: an attempt found over stays over, and a holder that acquires meanwhile is
        not in the read and counts as live (flow-control.md, "On Redis Cluster")."""
        ids = sorted({split_attempt(a.decode())[0] for a in attempts})
        found = []
        if ids:
            with self._guard("slot_records"):
                pipe = self._redis.pipeline(transaction=False)
                for task_id in ids:
                    pipe.hmget(self.key(TASK_KEY, task_id), "state", "retries", "instance")
                found = pipe.execute()
        return cast(bytes, msgpack.packb({
            task_id: [(state or b"").decode(), int(retries or 0), (instance or b"").decode()]
            for task_id, (state, retries, instance) in zip(ids, found)}))

    def _by_slot_group(self, keys: Sequence[str]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            found.setdefault(self.layout.group(key), []).append(i)
        return found

    def acquire_slots(self, requests: Sequence[SlotRequest]) -> tuple[list[bool], int]:
        if not requests:
            return [], 0
        packed = []
        for r in requests:
            head, tail = schedule_member_parts(r.waiting)
            packed.append([r.key, r.name, r.value, r.limit, r.task_id, r.retries, r.instance,
                           head, tail])
        if self.layout.groups == 1:
            answers, promoted, _ = self._slots("acquire", [a for p in packed for a in p])
            return [bool(a) for a in answers], int(promoted)
        return self._acquire_grouped(requests, packed)

    def _acquire_grouped(self, requests: Sequence[SlotRequest],
                         packed: list[list[Any]]) -> tuple[list[bool], int]:
        """Redis Cluster: one call per slot group; the requests that find their key full
        are asked again with the records of its holders and first waiting tasks."""
        found: list[Any] = [""] * len(requests)
        promoted = 0
        todo = self._by_slot_group([r.key for r in requests])
        look: dict[int, list[bytes]] = {}
        while todo:
            groups = list(todo)
            calls = [self._slots_call("acquire", g, self._slot_records(look[g]) if look else b"-",
                                      [a for i in todo[g] for a in packed[i]]) for g in groups]
            again: dict[int, list[int]] = {}
            asked: dict[int, list[bytes]] = {}
            for g, (answers, more, attempts) in zip(groups, self._calls("acquire_slots", calls)):
                promoted += int(more)
                for i, answer in zip(todo[g], answers):
                    found[i] = answer
                    if answer == b"?":
                        again.setdefault(g, []).append(i)
                        asked[g] = attempts
            if look:  # a second call never asks again
                break
            todo, look = again, asked
        return [a == b"1" for a in found], promoted

    def release_slots(self, slots: Sequence[tuple[str, str, int]]) -> int:
        """On Redis Cluster the holders' records are not read: a release hands on the
        slot it frees (the sweep drops dead holders)."""
        if not slots:
            return 0
        if self.layout.groups == 1:
            return int(self._slots("release", [a for s in slots for a in s]))
        by_group = self._by_slot_group([s[0] for s in slots])
        return sum(int(n) for n in self._calls("release_slots", [
            self._slots_call("release", g, _NO_RECORDS, [a for i in indexes for a in slots[i]])
            for g, indexes in by_group.items()]))

    def sweep_slots(self) -> int:
        if self.layout.groups == 1:
            return int(self._slots("sweep", [SWEEP_BATCH]))
        with self._guard("sweep_slots"):
            pipe = self._redis.pipeline(transaction=False)
            for g in self.layout.all_groups():
                pipe.zrange(self.key(SLOT_SWEEP_KEY, group=g), 0, SWEEP_BATCH - 1, withscores=True)
            rows = pipe.execute()
        oldest = sorted((at, key.decode(), g) for g, row in enumerate(rows) for key, at in row)
        by_group: dict[int, list[str]] = {}
        for _, key, g in oldest[:SWEEP_BATCH]:
            by_group.setdefault(g, []).append(key)
        return sum(int(n) for n in self._calls("sweep_slots", [
            self._slots_call("settle", g, self._slot_records(self._slot_attempts(g, keys)), list(keys))
            for g, keys in by_group.items()]))

    def concurrency_slots(self, limit: int = 100) -> list[SlotKeyInfo]:
        with self._guard("concurrency_slots"):
            pipe = self._redis.pipeline(transaction=False)
            for g in self.layout.all_groups():
                pipe.hgetall(self.key(SLOT_KEYS_KEY, group=g))
            metas: dict[bytes, bytes] = {}
            for found_keys in pipe.execute():
                metas.update(cast("dict[bytes, bytes]", found_keys))
            keys = sorted(metas)
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                text = key.decode()
                pipe.hgetall(self.key(SLOT_HELD_KEY, text))
                pipe.zrange(self.key(SLOT_QUEUE_KEY, text), 0, max(limit, 0) - 1)
                pipe.zcard(self.key(SLOT_QUEUE_KEY, text))
            rows = pipe.execute() if keys else []
        found = []
        for n, key in enumerate(keys):
            name, value, lim = msgpack.unpackb(metas[key], raw=False)
            held, waiting, count = rows[3 * n: 3 * n + 3]
            holders = []
            for attempt, packed in sorted(held.items()):
                instance, since = msgpack.unpackb(packed, raw=False)
                holders.append(SlotHolder(*split_attempt(attempt.decode()), instance, float(since)))
            if holders or count:
                found.append(SlotKeyInfo(
                    name, value, int(lim), tuple(sorted(holders, key=lambda h: h.since)),
                    tuple(split_attempt(a.decode())[0] for a in (waiting if limit > 0 else [])),
                    int(count)))
        return found
