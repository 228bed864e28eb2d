"""Periodic tasks for multi-process tests: each run appends its task id to a file under
``YADTQ_TEST_SIDE_EFFECTS`` so a test sees every execution in every worker."""

from __future__ import annotations

import os
from pathlib import Path

from yadtq import YADTQ
from yadtq.task import current_request

app = YADTQ("periodic-test")


def _mark(name: str) -> None:
    request = current_request()
    path = Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / name
    with path.open("a") as f:
        f.write(f"{request.id if request else '?'}\n")


@app.periodic_task(every=1, name="tick")
def tick() -> None:
    _mark("tick")


# Both are due hourly; the test stores them as missed for hours before any worker starts.
@app.periodic_task(every=3600, name="catch-once")
def catch_once() -> None:
    _mark("catch-once")


@app.periodic_task(every=3600, name="catch-none", catch_up="none")
def catch_none() -> None:
    _mark("catch-none")
