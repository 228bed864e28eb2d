"""``.delay()`` in a loop, for profiling and before/after timings of the submit path.

    python3 benchmarks/delay_loop.py BROKER_URL [N] [--bulk]   # e.g. kafka://127.0.0.1:9092, sqlite:///x.db

Sends N no-op tasks (default 20,000) with ``noop.delay()`` (``--bulk``: with one
``app.send_many([noop.s(), ...])``), waits until the broker
has them (flush), prints the rate, and purges the queue again. Time it as a whole
process (``/usr/bin/time -v``) or under a profiler (``py-spy record``, ``pyinstrument``).
"""

from __future__ import annotations

import os
import sys
import time
import uuid


def main(argv: list[str]) -> int:
    bulk = "--bulk" in argv
    argv = [a for a in argv if a != "--bulk"]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ["YADTQ_BROKER_URL"] = argv[0]
    os.environ.setdefault("YADTQ_BACKEND_URL", argv[0] if argv[0].startswith("sqlite") else "memory://")
    os.environ["YADTQ_DEFAULT_QUEUE"] = f"delay-{uuid.uuid4().hex[:8]}"
    n = int(argv[1]) if len(argv) > 1 else 20_000
    from yadtq import benchapp

    noop = benchapp.noop
    started = time.perf_counter()
    if bulk:
        benchapp.app.send_many([noop.s() for _ in range(n)])
    else:
        for _ in range(n):
            noop.delay()
    benchapp.app.flush(60)
    elapsed = time.perf_counter() - started
    print(f"{n / elapsed:,.0f} {'send_many' if bulk else 'delay()'}/s ({n} in {elapsed:.2f} s)")
    benchapp.app.purge()
    benchapp.app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
