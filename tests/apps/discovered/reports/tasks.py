from __future__ import annotations

from .. import app


@app.task
def slow_report(n: int) -> int:
    return 2 * n
