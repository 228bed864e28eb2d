"""The garbage collector's settings for a process that is a worker and nothing else.

Every task a worker runs allocates a few dozen short-lived objects (its delivery,
envelope, job, outcome, state change...), so CPython's collector runs its youngest
generation every few tasks and, now and then, a full collection that walks every
object of the process: the modules, the app, the clients, which never become
garbage. ``yadtq worker`` therefore, once its app is loaded and before it serves:

- freezes what exists then (``gc.freeze``): full collections skip it from then on;
- lets the youngest generation grow to :data:`YOUNG_THRESHOLD` objects before it is
  collected (CPython's default is 700), and the older ones to
  :data:`OLDER_THRESHOLD` collections of the next younger one (default 10).

Garbage cycles are still collected, later: a cycle lives until ten thousand more
allocations at most, a few milliseconds of a busy worker. Measured with a
``gc.callbacks`` timer in each of 2 workers running 10,000 no-op tasks on Kafka +
Redis: 40-49 ms of collector CPU per worker (44 young, 4-5 middle and 1 full
collection; about 3 % of its CPU) without this, none with it. A worker embedded in
another program (``Worker.run`` or ``start``) leaves the collector alone: that
process is not the worker's to tune.
"""

from __future__ import annotations

import gc

#: Allocations (net of deallocations) between two collections of the youngest generation.
YOUNG_THRESHOLD = 10_000
#: Collections of the next younger generation between two of each older one.
OLDER_THRESHOLD = 20


def tune_for_worker() -> None:
    """Freeze the objects that exist now and collect the young ones less often."""
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    young, _, _ = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), OLDER_THRESHOLD, OLDER_THRESHOLD)
