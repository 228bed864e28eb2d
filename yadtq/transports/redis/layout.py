"""Where each key lives: slot groups, so every script's keys share one Redis Cluster slot.

The keyspace is split into ``groups`` slot groups. With one group (plain Redis and
Sentinel, the default) every key is ``{prefix}:{name}{suffix}``, the layout yadtq has
always used. With more (Redis Cluster, 16 by default) a key is
``{{prefix}:{g}}:{name}{suffix}``: the hash tag ``{prefix}:{g}`` puts every key of group
``g`` in one slot, so one script can touch all of them.

A task's keys (record, waiters, revoke marker, progress) are in the group of its id; a
group's or chord's keys in the group of its id; a rate limit's in the group of the task
name; a dedupe key's in the group of the key; a concurrency limit key's (holders,
waiting list, messages, and the schedule entries of the tasks it promotes) in the group
of the limit key, its script given the task records it needs (redis/slots.py). The
indexes and counters that every state change touches (schedule, events, stats,
processing, retrying, recent lists, open chords) exist once per group, and readers
merge them; the worker registry and liveness hashes are written to every group by each
heartbeat (each group's script judges liveness on its own node's clock); the rest
(failures, periodic schedules, operator keys) lives in group 0.
"""

from __future__ import annotations

import zlib
from typing import Optional

from ...exceptions import ConfigurationError

#: Slot groups on Redis Cluster unless ``backend_options`` say otherwise.
CLUSTER_GROUPS = 16
#: The group of keys that exist once (failures, periodic schedules, operator keys).
HOME = 0


class Layout:
    """Key names of one prefix split into ``groups`` slot groups."""

    def __init__(self, prefix: str, groups: int) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"redis key prefix {prefix!r} must not contain braces")
        if not 1 <= groups <= 1024:
            raise ConfigurationError(f"redis slot groups must be 1..1024, not {groups}")
        self.prefix = prefix
        self.groups = groups

    def group(self, ident: str) -> int:
        """The slot group of a task, group, task name, dedupe key or limit key."""
        if self.groups == 1:
            return HOME
        return zlib.crc32(ident.encode()) % self.groups

    def base(self, group: int) -> str:
        """What every key of ``group`` starts with (before ``:name``)."""
        if self.groups == 1:
            return self.prefix
        return f"{{{self.prefix}:{group}}}"

    def key(self, name: str, suffix: str = "", group: Optional[int] = None) -> str:
        """Key ``name`` followed by ``suffix``, in ``group`` (default: the group of
        ``suffix``, or group 0 for a key without one)."""
        if group is None:
            group = self.group(suffix) if suffix else HOME
        return f"{self.base(group)}:{name}{suffix}"

    def all_groups(self) -> range:
        return range(self.groups)
