"""Flow control scenarios shared by the SQLite and Kafka + Redis tests."""

from __future__ import annotations

import bisect
from typing import Any

from yadtq.flow import parse_rate_limit


def most_in_a_window(starts: list[float], period: float) -> int:
    """The most start times within any half-open window of ``period`` seconds."""
    starts = sorted(starts)
    return max(bisect.bisect_left(starts, s + period) - i for i, s in enumerate(starts))


def rate_limit_is_accurate(m: Any) -> None:
    """1.5 periods' worth of a ``N/m`` task on 4 workers: never more than N (+5 %) starts
    in any sliding minute, and the (N+1)th start waits for the window (within 5 %),
    while an unlimited task of the same queue is not held up behind the waiting ones."""
    limit = parse_rate_limit(m.RATE)
    total = limit.count + limit.count // 2
    results = [m.limited.delay(i) for i in range(total)]
    assert m.free.delay(7).get(timeout=60) == 7  # the queue is not blocked by the limit
    starts = sorted(r.get(timeout=limit.period * 3) for r in results)
    offsets = [round(s - starts[0], 2) for s in starts]
    assert most_in_a_window(starts, limit.period) <= limit.count * 1.05, offsets
    first, next_window = starts[0], starts[limit.count]
    gap = next_window - first
    assert limit.period * 0.95 <= gap <= limit.period * 1.05, offsets
