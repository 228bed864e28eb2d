"""Canvas timings on the configured transports: a 10-step chain and a 1,000-member chord.

Start workers on ``examples.canvas_app`` first, on the same transports, e.g.::

    yadtq worker -A examples.canvas_app -c 8 &
    python -m benchmarks.canvas

Prints seconds from ``apply_async`` to the result (median of a few runs).
"""

from __future__ import annotations

import statistics
import time

from examples.canvas_app import add, app, total
from yadtq import chain, chord


def _median(runs: int, send: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        send()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Print the timings."""
    chain_s = _median(5, lambda: chain(add.s(0, 1), *[add.s(1) for _ in range(9)])
                      .apply_async().get(timeout=120))
    chord_s = _median(3, lambda: chord([add.s(i, i) for i in range(1000)], total.s())
                      .apply_async().get(timeout=300))
    print(f"{app.settings.broker_url} + {app.settings.backend_url}")
    print(f"chain of 10 steps: {chain_s:.2f} s ({chain_s / 10 * 1000:.0f} ms per step)")
    print(f"chord of 1000 members: {chord_s:.2f} s")


if __name__ == "__main__":
    main()
