"""Concurrency-slot steps of a backend: attempts per second through ``acquire_slots`` and
``release_slots`` (batches of 50, as a worker's fetch would ask), no worker needed::

    python -m benchmarks.slots                                # SQLite in a temporary directory
    python -m benchmarks.slots redis://127.0.0.1:6379/0       # Redis (a fresh key prefix)
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid

from yadtq.settings import load_settings
from yadtq.transports.base import Message, ScheduledMessage, create_backend
from yadtq.transports.slots_store import ConcurrencyBackend, SlotRequest

ATTEMPTS = 2000
BATCH = 50


def main(url: str) -> None:
    """Print the attempts per second acquired and released on ``url``'s backend."""
    options = {"prefix": f"bench-{uuid.uuid4().hex[:8]}"} if url.startswith("redis") else {}
    backend = create_backend(url, load_settings(broker="memory://", backend=url, environ={},
                                                backend_options=options))
    assert isinstance(backend, ConcurrencyBackend)
    key, waiting = "bench\x1fk", ScheduledMessage("x", 0.0, Message("q", b"body"))
    started = time.perf_counter()
    for batch in range(ATTEMPTS // BATCH):
        ids = [f"t{batch}-{i}" for i in range(BATCH)]
        backend.acquire_slots([SlotRequest(key, "bench", "k", 10, t, 0, "inst", waiting) for t in ids])
        backend.release_slots([(key, t, 0) for t in ids])
    took = time.perf_counter() - started
    print(f"{url.split(':')[0]}: {ATTEMPTS / took:,.0f} attempts/s acquired and released "
          f"(limit 10, batches of {BATCH})")
    backend.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/bench.db")
