"""Priority scenarios shared by the SQLite and Kafka + Redis tests: a backlog of low
tasks queued while no worker runs, then a few high ones; one worker with one slot."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Callable

#: Low-priority tasks queued before the high ones.
BACKLOG = 300


def high_first_under_backlog(m: Any, queue: str, start_worker: Callable[[], AbstractContextManager[Any]],
                             *, slack: int, levels: dict[str, int]) -> None:
    """The priority-9 tasks start first, then the priority-5 ones, then the backlog.

    ``slack``: how many backlog tasks may start before the last high one (0 where the
    broker orders every level exactly: SQLite). ``levels``: the broker's depth per
    priority before the worker starts (what ``yadtq monitor`` shows).
    """
    lows = [m.step.delay(i) for i in range(BACKLOG)]
    mids = [m.step.apply_async((1000 + i,), priority=5) for i in range(3)]
    highs = [m.step.apply_async((2000 + i,), priority=9) for i in range(3)]
    m.app.flush()
    # The depth is read from the cluster (end offsets, committed ones). One CI run read a
    # wrong depth right after the sends, cause unknown (a bare assert showed no value):
    # a reading that differs is read again for up to 10 s, and a level that never
    # reaches its count fails with every reading in the message.
    seen = [m.app.broker.depth_by_priority(queue)]
    deadline = time.monotonic() + 10
    while seen[-1] != levels and time.monotonic() < deadline:
        time.sleep(0.5)
        seen.append(m.app.broker.depth_by_priority(queue))
    if seen[-1] != levels:
        raise AssertionError(f"depth per priority {seen[-1]}, expected {levels}; readings {seen}")
    if len(seen) > 1:
        print(f"depth per priority reached {levels} after {len(seen)} readings: {seen}")
    with start_worker():
        starts = {r.id: r.get(timeout=240) for r in [*lows, *mids, *highs]}
    position = {task_id: n for n, task_id in enumerate(sorted(starts, key=starts.__getitem__))}
    high_at = sorted(position[r.id] for r in highs)
    mid_at = sorted(position[r.id] for r in mids)
    print(f"high tasks started {high_at}th, mid ones {mid_at}th of {len(position)}")
    assert high_at[-1] < len(highs) + slack, (high_at, mid_at)
    assert mid_at[-1] < len(highs) + len(mids) + slack, (high_at, mid_at)
    if slack == 0:
        assert high_at == [0, 1, 2] and mid_at == [3, 4, 5]
