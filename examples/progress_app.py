"""Progress reports: a task reports how far it got; the caller follows it live.

Run a worker, then the script (it prints the progress as it changes)::

    yadtq worker -A examples.progress_app
    python examples/progress_app.py
"""

from __future__ import annotations

import time
from typing import Any

from yadtq import YADTQ

app = YADTQ("progress-example")


@app.task(bind=True)
def resize_images(self: Any, count: int) -> int:
    """Pretend to resize ``count`` images, reporting after each one."""
    for done in range(1, count + 1):
        time.sleep(0.05)  # the work
        self.progress(done, count)  # cheap: written at most about once a second
    self.update_state("UPLOADING", {"files": count})
    time.sleep(0.5)
    return count


if __name__ == "__main__":
    result = resize_images.delay(60)
    for state, meta in result.follow(timeout=60):
        print(state, meta, result.progress)
    print("resized", result.get(timeout=10))
