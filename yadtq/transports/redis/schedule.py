"""The schedule of delayed messages in the Redis backend: one sorted set per slot group.

``schedule`` holds packed entries (``codec.schedule_member``) scored by due;
``claim_due`` moves due ones to ``schedule:leased``, scored by lease deadline, and
``release_due`` drops them once sent. A lease that runs out puts its entry back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, cast

from redis.commands.core import Script

from ..base import ScheduledMessage
from .codec import decode_member, float_text, schedule_member
from .grouped import Call, GroupedScripts, unavailable
from .keys import LEASED_KEY, SCHEDULE_KEY

#: Leased schedule members remembered with their group (for ``release_due``), at most.
_LEASED_MEMORY = 100_000


class RedisSchedule(GroupedScripts):
    """``claim_due``, ``release_due`` and ``next_due`` of ``RedisBackend``."""

    _scripts: dict[str, Script]
    #: Schedule members this instance leased, with their group (for ``release_due``).
    _leased: dict[bytes, int]

    def claim_due(self, now: Optional[float], limit: int, lease: float) -> list[ScheduledMessage]:
        """Lease due entries in one script; ``now`` ``None`` means Redis's clock (``TIME``).

        With several slot groups every group leases up to ``limit`` of its own; if that
        makes more than ``limit``, the latest are given back at once (a process dying
        before that leaves them leased: their lease runs out and they are due again).
        """
        if limit <= 0:
            return []
        k = self._group_key
        args = ["" if now is None else float_text(now), limit, float_text(lease)]
        calls: list[Call] = [(self._scripts["claim_due"], [k(SCHEDULE_KEY, g), k(LEASED_KEY, g)], args)
                             for g in self.layout.all_groups()]
        found = [(decode_member(m), m, g)
                 for g, reply in zip(self.layout.all_groups(), self._calls("claim_due", calls))
                 for m in reply]
        if len(found) > limit:
            found.sort(key=lambda f: f[0].due)
            extra, found = found[limit:], found[:limit]
            with unavailable("claim_due"):
                pipe = self._pipeline()
                for entry, member, g in extra:
                    pipe.zrem(k(LEASED_KEY, g), member)
                    pipe.zadd(k(SCHEDULE_KEY, g), {member: entry.due})
                pipe.execute()
        if self.layout.groups > 1:
            if len(self._leased) > _LEASED_MEMORY:
                self._leased.clear()
            self._leased.update((member, g) for _, member, g in found)
        return [entry for entry, _, _ in found]

    def release_due(self, entries: Sequence[ScheduledMessage]) -> None:
        """Drop entries from the schedule (leased or not). An entry's group is the one
        ``claim_due`` leased it from, or any when this instance did not lease it."""
        if not entries:
            return
        k = self._group_key
        with unavailable("release_due"):
            pipe = self._pipeline()
            for entry in entries:
                member = schedule_member(entry)
                g = self._leased.pop(member, None)
                for group in self.layout.all_groups() if g is None else (g,):
                    pipe.zrem(k(LEASED_KEY, group), member)
                    pipe.zrem(k(SCHEDULE_KEY, group), member)
            pipe.execute()

    def next_due(self) -> Optional[float]:
        """The lowest due of the schedule; leased entries are left out."""
        with unavailable("next_due"):
            pipe = self._redis.pipeline(transaction=False)
            for g in self.layout.all_groups():
                pipe.zrange(self._group_key(SCHEDULE_KEY, g), 0, 0, withscores=True)
            firsts = cast("list[list[Any]]", pipe.execute())
        dues = [float(first[0][1]) for first in firsts if first]
        return min(dues) if dues else None
