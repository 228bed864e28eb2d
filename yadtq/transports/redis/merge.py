"""Merging the replies of ``snapshot.lua`` from every slot group (see ``layout.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack


def _finished_at(raw: bytes) -> float:
    """When a recent-list entry (``record.lua``) finished: its fifth field."""
    return float(msgpack.unpackb(raw, raw=True)[4])


def merge_snapshots(replies: Sequence[Sequence[Any]], limit: int, recent: int) -> list[Any]:
    """One ``snapshot.lua`` reply made of the replies of several groups: counts and
    counters summed, listings merged in order (oldest first for the indexes, soonest first
    for the schedule, newest first for the recent lists) and cut to their limits."""
    if len(replies) == 1:
        return list(replies[0])
    processing = retrying = scheduled = 0
    counters: dict[bytes, int] = {}
    in_progress: list[Any] = []
    waiting: list[Any] = []
    due: list[tuple[bytes, bytes]] = []
    successes: list[bytes] = []
    failures: list[bytes] = []
    for p, r, s, stats, rows_p, rows_w, flat_due, ok, failed in replies:
        processing += int(p)
        retrying += int(r)
        scheduled += int(s)
        for name, value in zip(stats[::2], stats[1::2]):
            counters[name] = counters.get(name, 0) + int(value)
        in_progress += rows_p
        waiting += rows_w
        due += list(zip(flat_due[::2], flat_due[1::2]))
        successes += ok
        failures += failed
    in_progress.sort(key=lambda row: float(row[1]))
    waiting.sort(key=lambda row: float(row[1]))
    due.sort(key=lambda pair: float(pair[1]))
    successes.sort(key=_finished_at, reverse=True)
    failures.sort(key=_finished_at, reverse=True)
    stats_flat: list[Any] = [x for name, value in counters.items() for x in (name, value)]
    return [processing, retrying, scheduled, stats_flat, in_progress[:limit], waiting[:limit],
            [x for pair in due[:limit] for x in pair], successes[:recent], failures[:recent]]
