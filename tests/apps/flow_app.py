"""Tasks for the flow control tests: a rate-limited task returning when it started."""

from __future__ import annotations

import os
import time

from yadtq import YADTQ

app = YADTQ("flow")

#: The limit under test (a test sets ``YADTQ_TEST_RATE`` before importing this module).
RATE = os.environ.get("YADTQ_TEST_RATE", "60/m")


@app.task(rate_limit=RATE)
def limited(n: int) -> float:
    """Returns the wall-clock time it started (one host: comparable across workers)."""
    return time.time()


@app.task
def free(n: int) -> int:
    return n
