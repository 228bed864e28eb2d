"""Composing work: a chain, a group, a chord, link/link_error callbacks and chunks.

Run a worker, then this module as a script, on the same transports (the embedded
SQLite default ``yadtq.db`` in the current directory, or Kafka + Redis through
``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL``)::

    yadtq worker -A examples.canvas_app -c 4 &
    python -m examples.canvas_app
"""

from __future__ import annotations

import logging

from yadtq import YADTQ, ChordError, chain, chord, group

app = YADTQ("canvas")
logger = logging.getLogger(__name__)


@app.task
def add(x: float, y: float) -> float:
    """x + y."""
    return x + y


@app.task
def multiply(x: float, y: float) -> float:
    """x * y."""
    return x * y


@app.task
def total(values: list[float]) -> float:
    """The sum of a list: a chord's callback gets its members' results as one list."""
    return sum(values)


@app.task(max_retries=0)
def divide(x: float, y: float) -> float:
    """x / y (fails for y == 0, without retries)."""
    return x / y


@app.task
def report(value: object, label: str) -> str:
    """A callback: ``link`` gives it a result, ``link_error`` the id of a failed task."""
    line = f"{label}: {value}"
    logger.warning(line)
    return line


def main() -> None:
    """Send each kind of canvas and print what comes back."""
    timeout = 60
    r = chain(add.s(2, 3), multiply.s(10)).apply_async()  # or (add.s(2, 3) | multiply.s(10)).delay()
    print("chain(add(2, 3), multiply(10))       =", r.get(timeout=timeout),
          "  (its parent gave", r.parent.get(timeout=timeout), ")")

    g = group(add.s(i, i) for i in range(10)).apply_async()
    print("group(add(i, i) for i in range(10)) =", g.get(timeout=timeout))
    print("  reopened by id:", app.GroupResult(str(g)).completed_count(), "members succeeded")

    c = chord([add.s(i, i) for i in range(10)], total.s()).apply_async()
    print("chord(add(i, i)..., total)          =", c.get(timeout=timeout))

    nested = chain(add.s(1, 2), group(multiply.s(2), multiply.s(3)), total.s()).apply_async()
    print("add(1, 2) | group(*2, *3) | total  =", nested.get(timeout=timeout))

    failed = chord([divide.s(1, 1), divide.s(1, 0)], total.s()).apply_async()
    try:
        failed.get(timeout=timeout)
    except ChordError as exc:
        print("a chord with a failing member       -> ChordError:", exc)

    ok = add.apply_async((2, 3), link=report.s("link got"), link_error=report.s("link_error got"))
    bad = divide.apply_async((1, 0), link_error=report.s("link_error got the failed id"))
    print("add(2, 3) with link                 =", ok.get(timeout=timeout))
    print("divide(1, 0) with link_error        ->", bad.get(timeout=timeout, propagate=False))

    print("add.chunks(10 pairs, 4)             =",
          add.chunks([(i, 1) for i in range(10)], 4).apply_async().get(timeout=timeout))


if __name__ == "__main__":
    # Send through the module as workers import it, so task names match theirs.
    from examples.canvas_app import main as run

    run()
