"""Task ids: version 7 UUIDs (RFC 9562) as 32 hex digits, time first, made without a
system call per id."""

from __future__ import annotations

import os
import threading
import time

#: Each thread's batch of random parts still to hand out (``tails``).
_ids = threading.local()

#: Task ids' random parts drawn from the OS's randomness at once (one ``urandom`` call
#: per batch).
_ID_BATCH = 256
#: Bytes of a task id after its time stamp: version, 74 random bits, variant.
_TAIL_BYTES = 10

#: Byte maps setting a UUID's version (7) and variant (RFC 9562: binary 10) bits.
_VERSION_7 = bytes((b & 0x0F) | 0x70 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


#: The current millisecond (its start and end, epoch seconds) and its hex digits, shared
#: by every thread (a tuple: replaced whole, so a thread reads one millisecond's).
_stamp: tuple[float, float, str] = (0.0, 0.0, "")


def _draw_tails() -> list[str]:
    """A batch of version 7 UUIDs' last 20 hex digits (version, 12 random bits, variant,
    62 random bits): the version and variant bits set on the whole batch's bytes at once,
    then sliced."""
    raw = bytearray(os.urandom(_TAIL_BYTES * _ID_BATCH))
    raw[0::_TAIL_BYTES] = raw[0::_TAIL_BYTES].translate(_VERSION_7)
    raw[2::_TAIL_BYTES] = raw[2::_TAIL_BYTES].translate(_VARIANT)
    text = raw.hex()
    width = 2 * _TAIL_BYTES
    return [text[i:i + width] for i in range(0, width * _ID_BATCH, width)]


def new_task_id() -> str:
    """A new task id: a version 7 UUID (RFC 9562) as 32 hex digits, as ``uuid.UUID.hex``
    gives it: the milliseconds since the epoch, then 74 random bits.

    Time first, so ids made close in time sort close together: a store indexed by task
    id (the SQLite backend's tables, a relational result store) adds each new task at
    the end of its index rather than at a random page of it. With version 4 ids each
    claim of a batch of 20 touched about 20 pages of the SQLite task table's index, and
    each page is written to the log again at commit; ``benchmarks/end_to_end.py`` on
    SQLite, 2 workers, 10,000 no-ops a round: 4,379-4,543 -> 5,093-5,125 tasks/s, worker
    CPU 142-147 -> 118-122 us a task (``docs/performance.md``, 2026-12-03). Kafka's
    partitioner and Redis Cluster's slots hash the whole id, so they spread these ids as
    evenly as random ones.

    The random parts come from a per-thread batch of ``os.urandom`` bytes, forgotten in
    a forked child (``_forget_ids``), so parent and child never share one.
    """
    global _stamp
    tail: str
    try:
        tail = _ids.tails.pop()
    except (AttributeError, IndexError):
        _ids.tails = _draw_tails()
        tail = _ids.tails.pop()
    start, until, prefix = _stamp
    now = time.time()
    if not start <= now < until:  # another millisecond: its hex digits once, for every id in it
        millis = int(now * 1000)
        prefix = f"{millis:012x}"
        _stamp = (millis / 1000, (millis + 1) / 1000, prefix)
    return prefix + tail


def _forget_ids() -> None:
    """In a forked child: drop the random parts drawn before the fork (the parent uses them)."""
    _ids.__dict__.pop("tails", None)


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_ids)
