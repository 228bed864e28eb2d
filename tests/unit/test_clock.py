"""The backend's clock as a process estimates it (``yadtq/clock.py``)."""

from __future__ import annotations

import time

import pytest

from yadtq import YADTQ
from yadtq.clock import BackendClock
from yadtq.exceptions import BackendUnavailable
from yadtq.transports.memory import MemoryBackend

pytestmark = pytest.mark.timeout(30)


class SkewedBackend(MemoryBackend):
    """A backend whose clock is ``skew`` seconds ahead of this host's."""

    skew = 30.0
    calls = 0
    down = False

    def time(self) -> float:
        SkewedBackend.calls += 1
        if self.down:
            raise BackendUnavailable("down")
        return time.time() + self.skew


def test_the_estimate_follows_the_backends_clock_and_is_measured_rarely() -> None:
    app = YADTQ("clock", broker="memory://", backend="memory://")
    backend = SkewedBackend("memory://", app.settings)
    clock = BackendClock(backend)
    SkewedBackend.calls = 0
    for _ in range(100):
        assert clock.now() - time.time() == pytest.approx(30.0, abs=0.5)
    assert SkewedBackend.calls == 1 and clock.offset == pytest.approx(30.0, abs=0.5)


def test_an_unreachable_backend_keeps_the_last_offset() -> None:
    app = YADTQ("clock", broker="memory://", backend="memory://")
    backend = SkewedBackend("memory://", app.settings)
    backend.down = True
    clock = BackendClock(backend)
    assert clock.now() == pytest.approx(time.time(), abs=0.5)


def test_a_backend_on_this_host_costs_nothing() -> None:
    app = YADTQ("clock", broker="memory://", backend="memory://")
    assert app.now() == pytest.approx(time.time(), abs=0.1)
    assert app._clock is not None and app._clock.offset == 0.0


def test_countdowns_are_due_on_the_backends_clock() -> None:
    app = YADTQ("clock", broker="memory://", backend="memory://")
    skewed = SkewedBackend("memory://", app.settings)
    app._backend = skewed
    app._clock = BackendClock(skewed)

    @app.task
    def later() -> None: ...

    later.apply_async(countdown=10)
    due = skewed.next_due()
    assert due is not None and due - time.time() == pytest.approx(40.0, abs=1.0)
