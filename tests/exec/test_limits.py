"""``soft_time_limit`` raises ``SoftTimeLimitExceeded`` inside the task on every pool, where
the task can catch it (DESIGN.md §13); uncaught, the task fails without retries."""

from __future__ import annotations

import pytest

from yadtq import SoftTimeLimitExceeded, states

from ..worker.procs import running_workers
from .conftest import APP, Stack

pytestmark = pytest.mark.slow

#: pool -> tasks whose soft limit it must deliver where the task can catch it
CAUGHT = {
    "threads": ["soft_loop", "soft_async"],
    "processes": ["soft_loop", "soft_block", "soft_async"],
    "asyncio": ["soft_loop", "soft_async"],
}


@pytest.mark.parametrize("pool", list(CAUGHT))
def test_soft_time_limit_is_raised_inside_the_task(stack: Stack, pool: str) -> None:
    if stack.name == "kafka" and pool != "processes":
        pytest.skip("limits are the pools'; Kafka + Redis run the process pool case")
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir, ["--pool", pool, "-c", "4"]):
        results = {name: getattr(m, name).delay(f"{pool}-{name}") for name in CAUGHT[pool]}
        uncaught = m.soft_uncaught.delay(f"{pool}-uncaught")
        for name, result in results.items():
            assert result.get(timeout=60) == "cleaned up", name
        with pytest.raises(SoftTimeLimitExceeded, match=r"soft time limit of 0\.3 s"):
            uncaught.get(timeout=60)
    assert uncaught.state == states.FAILED and uncaught.retries == 0
    assert stack.effect_lines(f"{pool}-uncaught.started") == stack.effect_lines(
        f"{pool}-uncaught.started")[:1]
