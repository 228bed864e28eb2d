"""The Redis backend's flow control step (``LimitsBackend`` in base.py): ``rate.lua``.

Keys (named in ``keys.py``), each after ``{prefix}:``: ``rate:{task name}`` (sorted
set): attempt -> start time or reservation, on Redis's clock, expiring one period
after its newest entry. The script also puts a refused attempt's message into the
``schedule``, due at its reservation, in the same step (the schedule of the task name's
slot group, ``layout.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import redis
from redis.commands.core import Script

from ...flow import slack
from ..limits_store import LimitsBackend, RateRequest
from .codec import schedule_member_parts
from .keys import RATE_KEY, SCHEDULE_KEY
from .layout import Layout

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

_SCRIPT_DIR = Path(__file__).parent / "scripts"


@cache
def _rate_source() -> str:
    return (_SCRIPT_DIR / "common.lua").read_text() + "\n" + (_SCRIPT_DIR / "rate.lua").read_text()


class RedisLimits(LimitsBackend):
    """Mixed into ``RedisBackend``; uses its connection and key names."""

    _redis: redis.Redis

    layout: Layout

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        raise NotImplementedError

    def _calls(self, what: str, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        raise NotImplementedError

    def _guard(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _rate_script(self) -> Script:
        script: Optional[Script] = getattr(self, "_rate", None)
        if script is None:
            script = self._redis.register_script(_rate_source())
            self._rate = script
        return script

    def admit_rate(self, requests: Sequence[RateRequest]) -> list[Optional[float]]:
        if not requests:
            return []
        by_group: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            by_group.setdefault(self.layout.group(r.name), []).append(i)
        calls = []
        for g, indexes in by_group.items():
            args: list[Any] = [self.key(RATE_KEY, group=g)]
            for i in indexes:
                r = requests[i]
                head, tail = schedule_member_parts(r.waiting)
                args += [r.name, r.attempt, r.count, repr(float(r.period)), head, tail,
                         repr(slack(r.period))]
            calls.append((self._rate_script(), [self.key(SCHEDULE_KEY, group=g)], args))
        found: list[Optional[float]] = [None] * len(requests)
        for indexes, answers in zip(by_group.values(), self._calls("admit_rate", calls)):
            for i, a in zip(indexes, answers):
                found[i] = float(a) if a else None
        return found
