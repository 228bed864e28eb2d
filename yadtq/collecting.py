"""Pausing CPython's cyclic garbage collector while one call builds many objects.

A bulk send (``app.send_many``, a group of plain signatures) creates a few
containers per task (its arguments, its message's headers, its result handle): tens
of thousands of objects that all outlive the call. The collector counts them as they
come and runs its youngest generation every 700, promoting the survivors, and a full
collection, which walks every object of the process, each time enough of them
reached the oldest one: work that finds no garbage, a large share of the call (see
``docs/performance-history.md``). Paused for the call, the collector sees those objects
once, at its next run.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off, then turn it back on if it was on.

    Process-wide, as ``gc.disable`` is: another thread's garbage cycles wait for the
    body to end too (reference counting frees everything else as usual)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
