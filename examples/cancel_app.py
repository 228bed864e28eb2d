"""Cancelling running tasks: ``revoke(terminate=True)`` on a task that reports progress.

Run a worker, then the script (it starts a long task, waits for it to run, stops it)::

    yadtq worker -A examples.cancel_app
    python examples/cancel_app.py

The same from the command line: ``yadtq revoke -A examples.cancel_app ID --terminate``.
"""

from __future__ import annotations

import time
from typing import Any

from yadtq import YADTQ, Revoked

app = YADTQ("cancel-example")


@app.task(bind=True)
def crunch(self: Any, steps: int) -> int:
    """A long loop; on a thread-pool worker ``progress`` raises ``Revoked`` once terminated."""
    for done in range(steps):
        time.sleep(0.1)
        self.progress(done, steps)
    return steps


if __name__ == "__main__":
    result = crunch.delay(600)  # a minute of work
    while result.progress is None:
        time.sleep(0.1)
    print("running:", result.state, result.progress)
    result.revoke(terminate=True)
    print("after revoke:", result.state)
    try:
        result.get(timeout=10)
    except Revoked as exc:
        print("get() raised Revoked:", exc)
