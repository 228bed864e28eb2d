"""Configuration with real workers: ``-A package`` autodiscovers its tasks modules, settings
come from a module, ``task_routes`` sends tasks to their queues, ``ignore_result`` stores
nothing but the final state."""

from __future__ import annotations

import importlib

import pytest

from yadtq import states

from ..worker.procs import running_workers, wait_ready
from .conftest import Stack

pytestmark = pytest.mark.slow


def test_package_app_with_routes_from_its_settings_module(stack: Stack, unique: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCOVERED_QUEUE_SUFFIX", f"-{unique}")
    env = {**stack.env, "DISCOVERED_QUEUE_SUFFIX": f"-{unique}"}
    importlib.reload(importlib.import_module("tests.apps.discovered.settings"))  # new queue names
    package = importlib.reload(importlib.import_module("tests.apps.discovered"))
    tasks = importlib.reload(importlib.import_module("tests.apps.discovered.tasks"))
    reports = importlib.reload(importlib.import_module("tests.apps.discovered.reports.tasks"))
    app = package.app
    fast, slow = f"fast-{unique}", f"slow-{unique}"
    try:
        with running_workers(1, "tests.apps.discovered", env, stack.logdir,
                             ["-Q", f"{fast},{slow},{app.settings.default_queue}"]) as workers:
            wait_ready(workers, app.get_worker_status)
            ping = tasks.ping.delay()
            report = reports.slow_report.delay(21)
            fire = tasks.fire_and_forget.delay(3)
            by_name = app.send_task("tests.apps.discovered.reports.tasks.slow_report", (1,))
            assert ping.get(timeout=60) == "pong"
            assert report.get(timeout=60) == 42 and by_name.get(timeout=60) == 2
            assert fire.get(timeout=60) is None
        assert ping.info is not None and ping.info.queue == fast
        assert report.info is not None and report.info.queue == slow
        assert fire.state == states.SUCCESS and fire.info is not None and fire.info.result is None
    finally:
        app.close()
