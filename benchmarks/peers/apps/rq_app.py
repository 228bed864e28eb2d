"""RQ's task functions (RQ imports them by name in the worker)."""

from __future__ import annotations


def noop() -> None:
    """Does nothing."""


def add(x: int, y: int) -> int:
    return x + y
