"""Checked by mypy in tests/unit/test_typing.py: the lines marked E must be errors."""

from __future__ import annotations

from typing import Any

from yadtq import YADTQ

app = YADTQ("typing", broker="memory://", backend="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(max_retries=5)
def greet(name: str) -> str:
    return f"hi {name}"


@app.task(bind=True)
def bound(self: Any, n: int) -> float:
    return n / 2


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


total: int = add.delay(2, 3).get()
body: bytes = fetch.delay("u").get()
fetch.delay(3)  # E: wrong type
not_bytes: str = fetch.delay("u").get()  # E: bytes is not str
words: str = greet.delay("bob").get(timeout=1)
half: float = bound.delay(3).get()
add.delay("x")  # E: wrong arity and type
greet.delay(1)  # E: wrong type
bound.delay()  # E: missing argument
wrong: str = add.delay(1, 2).get()  # E: int is not str
