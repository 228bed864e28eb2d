"""Canvas on memory://, with an in-process worker (``tests/apps/canvas_app.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq.worker.main import Worker

from . import canvas_scenarios as scenarios


@pytest.fixture(scope="module")
def m() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("YADTQ_TEST_COUNTERS", "YADTQ_TEST_SIDE_EFFECTS"):
            patch.delenv(name, raising=False)
        patch.setenv("YADTQ_BROKER_URL", "memory://")
        patch.setenv("YADTQ_BACKEND_URL", "memory://")
        module = importlib.reload(importlib.import_module("tests.apps.canvas_app"))
        worker = Worker(module.app, name="canvas-worker", concurrency=4).start()
        try:
            yield module
        finally:
            worker.stop()
            module.app.close()


def test_chain_results_and_parent(m: Any) -> None:
    scenarios.chain_results_and_parent(m)


def test_chain_failure_propagates(m: Any) -> None:
    scenarios.chain_failure_propagates(m)


def test_group_keeps_submission_order(m: Any) -> None:
    scenarios.group_keeps_submission_order(m, m.app)


def test_link_and_link_error(m: Any) -> None:
    scenarios.link_and_link_error(m, "mem")


def test_nested_canvas(m: Any) -> None:
    scenarios.nested_canvas(m)


def test_chord_and_chord_error(m: Any) -> None:
    scenarios.chord_and_chord_error(m, "mem")


def test_parent_and_root_ids(m: Any) -> None:
    scenarios.lineage_is_set(m)
