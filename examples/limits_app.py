"""Time limits: a soft limit the task catches to clean up, and a hard one that stops it.

Run a worker with the process pool (which enforces both), then the script::

    yadtq worker -A examples.limits_app --pool processes -c 2
    python examples/limits_app.py
"""

from __future__ import annotations

import time

from yadtq import YADTQ, SoftTimeLimitExceeded
from yadtq.exceptions import TimeLimitExceeded

app = YADTQ("limits-example")


@app.task(soft_time_limit=1)
def export(rows: int) -> str:
    """Writes a row every 0.1 s; stops cleanly when its soft limit passes."""
    written = 0
    try:
        for _ in range(rows):
            time.sleep(0.1)
            written += 1
    except SoftTimeLimitExceeded:
        return f"partial: {written} of {rows} rows"
    return f"all {rows} rows"


@app.task(time_limit=1, max_retries=0)
def stuck() -> None:
    """Never returns: the hard limit kills its process."""
    time.sleep(3600)


if __name__ == "__main__":
    print(export.delay(5).get(timeout=30))
    print(export.delay(1000).get(timeout=30))
    try:
        stuck.delay().get(timeout=30)
    except TimeLimitExceeded as exc:
        print("stuck:", exc)
