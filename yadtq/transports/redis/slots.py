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

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ...settings import Settings

_SCRIPT_DIR = Path(__file__).parent / "scripts"


@cache
def _slots_source() -> str:
    return (_SCRIPT_DIR / "common.lua").read_text() + "\n" + (_SCRIPT_DIR / "slots.lua").read_text()


class RedisSlots(ConcurrencyBackend):
    """Mixed into ``RedisBackend``; uses its connection, key names and liveness window."""

    _redis: redis.Redis
    _outage_gap: float
    settings: Settings

    def key(self, name: str, suffix: str = "") -> str:
        raise NotImplementedError

    def _guard(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _slots(self, op: str, args: list[Any]) -> Any:
        script: Optional[Script] = getattr(self, "_slots_script", None)
        if script is None:
            script = self._redis.register_script(_slots_source())
            self._slots_script = script
        keys = [self.key(SCHEDULE_KEY), self.key(INSTANCES_KEY), self.key(WATCH_KEY),
                self.key(SLOT_KEYS_KEY), self.key(SLOT_SWEEP_KEY), self.key(SLOT_SEQ_KEY)]
        head = [op, self.key(SLOT_HELD_KEY), self.key(SLOT_QUEUE_KEY), self.key(SLOT_MESSAGES_KEY),
                self.key(TASK_KEY), float_text(self.settings.worker_unresponsive_after),
                float_text(self._outage_gap), float_text(PROMOTED_TTL)]
        with self._guard(f"{op}_slots"):
            return script(keys=keys, args=head + args)

    def acquire_slots(self, requests: Sequence[SlotRequest]) -> tuple[list[bool], int]:
        if not requests:
            return [], 0
        args: list[Any] = []
        for r in requests:
            head, tail = schedule_member_parts(r.waiting)
            args += [r.key, r.name, r.value, r.limit, r.task_id, r.retries, r.instance, head, tail]
        answers, promoted = self._slots("acquire", args)
        return [bool(a) for a in answers], int(promoted)

    def release_slots(self, slots: Sequence[tuple[str, str, int]]) -> int:
        if not slots:
            return 0
        args: list[Any] = []
        for key, task_id, retries in slots:
            args += [key, task_id, retries]
        return int(self._slots("release", args))

    def sweep_slots(self) -> int:
        return int(self._slots("sweep", [SWEEP_BATCH]))

    def concurrency_slots(self, limit: int = 100) -> list[SlotKeyInfo]:
        with self._guard("concurrency_slots"):
            metas = cast("dict[bytes, bytes]", self._redis.hgetall(self.key(SLOT_KEYS_KEY)))
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
