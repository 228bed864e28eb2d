"""``.delay()`` in a loop, for profiling and before/after timings of the submit path.

    python3 benchmarks/delay_loop.py BROKER_URL [N] [--bulk] [--rounds R]
    # e.g. kafka://127.0.0.1:9092 (backend: YADTQ_BACKEND_URL, else memory://), sqlite:///x.db

After one untimed send (connecting; the queue's Kafka topic is created on first use),
sends N no-op tasks (default 20,000) with ``noop.delay()`` (``--bulk``: with one
``app.send_many([noop.s(), ...])``, the signatures built inside the timing, as the
side-by-side harness does), waits until the broker has them (flush), and prints per
round: the rate including the flush, the calls alone, the caller's thread CPU per call
(``time.thread_time``: what the sending code itself costs, the figure that moves least
on a loaded machine) and the flush. Then it purges the queue. Run it under a profiler
(``py-spy record -o out.svg -- python3 ...``, ``pyinstrument``) to see where a send's
time goes.
"""

from __future__ import annotations

import os
import sys
import time
import uuid


def main(argv: list[str]) -> int:
    bulk = "--bulk" in argv
    argv = [a for a in argv if a != "--bulk"]
    rounds = 1
    if "--rounds" in argv:
        at = argv.index("--rounds")
        rounds = int(argv[at + 1])
        del argv[at:at + 2]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ["YADTQ_BROKER_URL"] = argv[0]
    os.environ.setdefault("YADTQ_BACKEND_URL", argv[0] if argv[0].startswith("sqlite") else "memory://")
    os.environ["YADTQ_DEFAULT_QUEUE"] = f"delay-{uuid.uuid4().hex[:8]}"
    n = int(argv[1]) if len(argv) > 1 else 20_000
    from yadtq import benchapp

    app, noop = benchapp.app, benchapp.noop
    noop.delay()  # connecting and creating the queue's topic is setup, not sending
    app.flush(60)
    what = "send_many" if bulk else "delay()"
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.thread_time()
        if bulk:
            app.send_many([noop.s() for _ in range(n)])
        else:
            for _ in range(n):
                noop.delay()
        called, cpu = time.perf_counter(), time.thread_time() - cpu
        app.flush(60)
        done = time.perf_counter()
        print(f"{n / (done - started):,.0f} {what}/s with the flush ({n} in {done - started:.3f} s); "
              f"calls alone {n / (called - started):,.0f}/s, {cpu / n * 1e6:.1f} us CPU of the "
              f"caller's thread per task; flush {(done - called) * 1000:.1f} ms")
    app.purge()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
