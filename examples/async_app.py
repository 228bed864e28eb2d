"""``async def`` tasks: run many at once on one worker with ``--pool asyncio``.

Start a worker, then send from asyncio code (or run this file)::

    yadtq worker -A examples.async_app --pool asyncio -c 1000
    python examples/async_app.py

Set ``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL`` for Kafka and Redis; without them the
embedded SQLite default (``yadtq.db`` in the current directory) is used.
"""

from __future__ import annotations

import asyncio
import time

from yadtq import YADTQ

app = YADTQ("async-example")


@app.task
async def slow_double(x: int, seconds: float = 1.0) -> int:
    """Wait ``seconds`` (an I/O call in real life), then return 2x; the loop runs others meanwhile."""
    await asyncio.sleep(seconds)
    return 2 * x


@app.task
def add(x: int, y: int) -> int:
    """A plain task: an asyncio-pool worker runs it in a small thread executor."""
    return x + y


async def main(count: int = 1000) -> None:
    started = time.monotonic()
    results = [await slow_double.adelay(i) for i in range(count)]
    values = await asyncio.gather(*(r.aget(timeout=60) for r in results))
    assert values == [2 * i for i in range(count)]
    print(f"{count} tasks of 1 s each done in {time.monotonic() - started:.1f} s")
    print("add(2, 3) =", await (await add.adelay(2, 3)))


if __name__ == "__main__":
    asyncio.run(main())
