"""An in-process app for the CLI tests: CliRunner loads it with ``-A tests.apps.cli_app``."""

from __future__ import annotations

from yadtq import YADTQ

app = YADTQ("cli-test", broker="memory://", backend="memory://")


class Boom(Exception):
    """An exception type the client cannot rebuild (it travels as a TaskError)."""


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def sub(x: int, y: int) -> int:
    return x - y


@app.task
def greet(name: str) -> str:
    return f"hello {name}"


@app.task(max_retries=0)
def divide(x: float, y: float) -> float:
    return x / y


@app.task(max_retries=0)
def explode(message: str) -> None:
    raise Boom(message)
