"""The app of the delivery cases: memory:// broker and backend, liveness judged in 2 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from yadtq import YADTQ


@pytest.fixture
def app() -> Iterator[YADTQ]:
    app = YADTQ("cases", broker="memory://", backend="memory://", heartbeat_interval=0.2,
                worker_unresponsive_after=2.0)
    try:
        yield app
    finally:
        app.close()
