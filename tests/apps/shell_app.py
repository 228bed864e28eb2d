"""Tasks for the ``yadtq shell`` tests: plain, failing, defaulted and bound tasks."""

from __future__ import annotations

from typing import Any

from yadtq import YADTQ

app = YADTQ("shell-test")


@app.task
def add(x: int, y: int) -> int:
    """x + y."""
    return x + y


@app.task(max_retries=0)
def divide(x: float, y: float) -> float:
    """x / y; fails at once on y = 0."""
    return x / y


@app.task
def greet(name: str, punctuation: str = "!") -> str:
    """A greeting for name."""
    return f"hello {name}{punctuation}"


@app.task(bind=True)
def whoami(self: Any, tag: str) -> str:
    """The task id, tagged (a bound task: the shell passes only tag)."""
    return f"{tag}:{self.request.id}"
