"""Priority scenarios shared by the SQLite and Kafka + Redis tests: a backlog of low
tasks queued while no worker runs, then a few high ones; one worker with one slot."""

from __future__ import annotations

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
    assert m.app.broker.depth_by_priority(queue) == levels
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
