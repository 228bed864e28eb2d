"""The Redis backend's monitoring ``snapshot``: one script per slot group reads the
indexes, lists and counters kept in the same step as each state change (see the package
docstring), and ``merge.py`` merges the groups' answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.commands.core import Script

from ..base import RECENT_LIMIT, BackendSnapshot
from ..records import summarize_scheduled, totals_from
from .codec import decode_member, finished_summary, float_text, indexed_summary
from .grouped import Call, GroupedScripts
from .keys import (
    LEASED_KEY,
    PROCESSING_KEY,
    RECENT_FAILED_KEY,
    RECENT_SUCCESS_KEY,
    RETRYING_KEY,
    SCHEDULE_KEY,
    STATS_KEY,
    TASK_KEY,
)
from .merge import merge_snapshots

if TYPE_CHECKING:
    from ...settings import Settings


class RedisMonitor(GroupedScripts):
    """``snapshot`` of ``RedisBackend``."""

    _scripts: dict[str, Script]
    settings: Settings

    def snapshot(self, limit: int = RECENT_LIMIT) -> BackendSnapshot:
        """One script reading the indexes, lists and counters (see the module docstring)."""
        limit = max(limit, 0)
        k = self._group_key
        calls: list[Call] = []
        for g in self.layout.all_groups():
            keys = [k(PROCESSING_KEY, g), k(RETRYING_KEY, g), k(SCHEDULE_KEY, g), k(LEASED_KEY, g),
                    k(STATS_KEY, g), k(RECENT_SUCCESS_KEY, g), k(RECENT_FAILED_KEY, g)]
            args = [k(TASK_KEY, g), limit, min(limit, RECENT_LIMIT),
                    float_text(self.settings.result_expires)]
            calls.append((self._scripts["snapshot"], keys, args))
        (processing, retrying, scheduled, stats, in_progress, waiting, due, successes,
         failures) = merge_snapshots(self._calls("snapshot", calls), limit, min(limit, RECENT_LIMIT))
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
