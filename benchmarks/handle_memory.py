"""Memory and collector cost of the result handles a client keeps alive.

    python3 benchmarks/handle_memory.py [N]

Builds N (default 100,000) ``AsyncResult`` handles, as a loop of ``.delay()`` keeping
its results does, and prints the bytes each takes (``tracemalloc``, its list slot
included) and the CPU of one full collection of the cyclic garbage collector while
they are alive (the mean of 20). In-memory transports: nothing is sent.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

from yadtq import YADTQ
from yadtq.result import AsyncResult


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 100_000
    app = YADTQ("handles", broker="memory://", backend="memory://")
    ids = [f"{i:032x}" for i in range(count)]
    gc.collect()
    tracemalloc.start()
    handles = [AsyncResult(task_id, app) for task_id in ids]
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    started = time.process_time()
    for _ in range(20):
        gc.collect()
    collection = (time.process_time() - started) / 20
    print(f"{count:,} handles: {used / len(handles):.0f} bytes each; "
          f"a full collection {collection * 1000:.1f} ms while they are alive")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
