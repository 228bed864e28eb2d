from __future__ import annotations

import random

from yadtq import states
from yadtq.retry import backoff_delay, retry_delay


def test_backoff_grows_exponentially_and_is_capped() -> None:
    delays = [backoff_delay(n, base=1.0, maximum=30.0, jitter=False) for n in range(8)]
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert max(delays) == 30.0


def test_jitter_stays_within_half_to_full_delay() -> None:
    rng = random.Random(7)
    draws = [backoff_delay(3, base=1.0, maximum=100, jitter=True, rng=rng) for _ in range(500)]
    assert all(4.0 <= d <= 8.0 for d in draws)
    assert len({round(d, 6) for d in draws}) > 400  # really random


def test_retry_delay_modes() -> None:
    assert retry_delay(5, backoff=False, delay=2.0, maximum=600, jitter=True) == 2.0
    assert retry_delay(2, backoff=True, delay=0.5, maximum=600, jitter=False) == 2.0
    assert retry_delay(2, backoff=3.0, delay=0.5, maximum=600, jitter=False) == 12.0


def test_ready_states_are_final() -> None:
    for ready in states.READY_STATES:
        assert not any(states.can_transition(ready, s) for s in states.ALL_STATES)
    assert states.can_transition(states.QUEUED, states.PROCESSING)
    assert states.can_transition(states.PROCESSING, states.RETRYING)
    assert states.can_transition(None, states.SCHEDULED)
