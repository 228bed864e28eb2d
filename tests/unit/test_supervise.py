"""The worker's thread supervisor: crashes are logged, restarted, visible in health."""

from __future__ import annotations

import logging
import threading

import pytest

from yadtq.worker.supervise import Supervisor

from ..worker.helpers import wait_until


def test_a_crashed_loop_is_logged_restarted_and_reported_until_it_heals(
        caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    release = threading.Event()

    def loop() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise KeyError("boom")
        release.wait(10)

    supervisor = Supervisor(heal_after=0.5)
    with caplog.at_level(logging.CRITICAL, logger="yadtq.worker.supervise"):
        thread = supervisor.spawn("looper", loop)
        wait_until(lambda: len(runs) == 2, timeout=10)
    assert supervisor.problems() == ["looper: KeyError: 'boom'"]
    assert "worker thread looper crashed (KeyError: 'boom'); restarting it" in caplog.text
    wait_until(lambda: supervisor.problems() == [], timeout=10)  # healed after heal_after
    release.set()
    thread.join(10)
    assert not thread.is_alive()


def test_a_fatal_crash_calls_on_fatal_and_stays_reported() -> None:
    reasons: list[str] = []
    supervisor = Supervisor(heal_after=0.01, on_fatal=reasons.append)

    def crash() -> None:
        raise SystemExit(3)  # even BaseException does not end a thread silently

    thread = supervisor.spawn("recorder", crash, restart=False, fatal=True)
    thread.join(10)
    assert reasons == ["recorder crashed: SystemExit: 3"]
    assert supervisor.problems() == ["recorder: SystemExit: 3"]  # sticks: the worker is stopping


def test_close_ends_restarts() -> None:
    runs: list[int] = []

    def crash() -> None:
        runs.append(1)
        raise RuntimeError("again")

    supervisor = Supervisor(heal_after=1.0)
    supervisor.close()
    thread = supervisor.spawn("crasher", crash)
    thread.join(10)
    assert runs == [1] and not thread.is_alive()
