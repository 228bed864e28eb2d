"""Retry delays: exponential backoff with full jitter, as pure functions."""

from __future__ import annotations

import random
from typing import Optional


def backoff_delay(
    retries: int,
    *,
    base: float = 1.0,
    maximum: float = 600.0,
    jitter: bool = True,
    rng: Optional[random.Random] = None,
) -> float:
    """Delay before attempt ``retries + 1``: ``base * 2**retries`` capped at ``maximum``.

    With ``jitter`` the delay is drawn uniformly from ``[delay/2, delay]`` so that
    many tasks failing together do not retry together, while the delay still grows.
    """
    delay = min(maximum, base * (2 ** max(0, retries)))
    if jitter:
        draw = (rng or random).uniform(0.5, 1.0)
        delay *= draw
    return float(delay)


def retry_delay(
    retries: int,
    *,
    backoff: bool | float,
    delay: float,
    maximum: float,
    jitter: bool,
) -> float:
    """The delay for a task's next attempt, given its retry options.

    ``backoff`` may be ``True`` (base ``delay``) or a number used as the base.
    """
    if backoff is False:
        return delay
    base = delay if backoff is True else float(backoff)
    return backoff_delay(retries, base=base, maximum=maximum, jitter=jitter)
