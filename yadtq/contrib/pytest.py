"""pytest plugin (entry point ``pytest11``): yadtq apps and workers for your own tests.

Fixtures:

- ``yadtq_app``: a fresh app on ``memory://``; override it in your ``conftest.py``
  to test your own app (see :func:`on_memory`).
- ``yadtq_worker``: a worker consuming ``yadtq_app`` in a background thread,
  stopped gracefully after the test; an app that is not on ``memory://`` is put
  on fresh in-memory transports for the test first, so tests stay isolated.

Example::

    # conftest.py
    import pytest
    from yadtq.contrib.pytest import on_memory
    from myproject.tasks import app

    @pytest.fixture
    def yadtq_app():
        with on_memory(app) as memory_app:
            yield memory_app

    # test_tasks.py
    from myproject.tasks import add

    def test_add(yadtq_worker):
        assert add.delay(2, 3).get(timeout=5) == 5
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from ..app import YADTQ
from ..worker.main import Worker


@contextmanager
def on_memory(app: YADTQ) -> Iterator[YADTQ]:
    """Point ``app`` at fresh in-memory transports for the duration of the block."""
    saved = app.settings
    app.close()
    app.settings = saved.replace(broker_url="memory://", backend_url="memory://")
    try:
        yield app
    finally:
        app.close()
        app.settings = saved


@pytest.fixture
def yadtq_app() -> Iterator[YADTQ]:
    """A fresh app on ``memory://`` (override to use your own app via :func:`on_memory`)."""
    app = YADTQ("pytest", broker="memory://", backend="memory://")
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def yadtq_worker(yadtq_app: YADTQ) -> Iterator[Worker]:
    """A worker running ``yadtq_app``'s tasks in a background thread.

    Isolated by default: an app not on ``memory://`` (say, your own app returned by an
    overridden ``yadtq_app`` without :func:`on_memory`) is put on fresh in-memory
    transports for the test, so no test reaches a real database or real workers.
    """
    with ExitStack() as stack:
        settings = yadtq_app.settings
        if not (settings.broker_url.startswith("memory:") and settings.backend_url.startswith("memory:")):
            stack.enter_context(on_memory(yadtq_app))
        worker = Worker(yadtq_app, name="pytest-worker", concurrency=4).start()
        try:
            yield worker
        finally:
            worker.stop(timeout=30)
