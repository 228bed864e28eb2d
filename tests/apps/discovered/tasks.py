from __future__ import annotations

from . import app


@app.task
def ping() -> str:
    return "pong"


@app.task(ignore_result=True)
def fire_and_forget(x: int) -> int:
    return x * 1000
