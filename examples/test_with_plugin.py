"""Testing examples.math_app with yadtq's pytest plugin (run: pytest examples/test_with_plugin.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from examples.math_app import add, app, divide
from yadtq import YADTQ
from yadtq.contrib.pytest import on_memory


@pytest.fixture
def yadtq_app() -> Iterator[YADTQ]:
    with on_memory(app) as memory_app:
        yield memory_app


def test_add(yadtq_worker: object) -> None:
    assert add.delay(2, 3).get(timeout=5) == 5


def test_divide_by_zero(yadtq_worker: object) -> None:
    with pytest.raises(ZeroDivisionError):
        divide.delay(1, 0).get(timeout=5)
