"""A last-resort watchdog for each test: one stuck in C (a librdkafka call blocks with the
GIL released, where pytest-timeout's signal never gets to run) dumps every thread's stack
and ends the run, instead of holding CI until its own deadline with nothing to show.

pytest-timeout stays the first line: it fails one test and the run goes on. This fires
only well past a test's own timeout, so only when that could not act.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from typing import Optional

import pytest

#: How far past its own timeout a test runs before the watchdog acts.
SLACK_FACTOR = 1.5
SLACK_SECONDS = 60.0

_stderr: Optional[int] = None


def _real_stderr(config: pytest.Config) -> int:
    """A descriptor of the terminal's stderr, taken while output capture is off (a dump
    into the capture's file would be lost with the process)."""
    global _stderr
    if _stderr is None:
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is None:
            _stderr = os.dup(2)
        else:
            with capture.global_and_fixture_disabled():
                _stderr = os.dup(2)
    return _stderr


def _limit(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    value = None
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    if value is None:
        value = item.config.getini("timeout") or 0
    return float(value)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    limit = _limit(item)
    if limit <= 0:
        yield
        return
    faulthandler.dump_traceback_later(limit * SLACK_FACTOR + SLACK_SECONDS, exit=True,
                                      file=_real_stderr(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
