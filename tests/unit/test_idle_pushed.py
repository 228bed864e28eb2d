"""An idle worker waits to be woken (issue 9): the scheduler and the control listener
sleep long while the backend pushes wake-ups, the terminator while no task runs, and
the periodic ticker while the backend holds no schedule."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from yadtq import YADTQ
from yadtq.periodic import Schedule
from yadtq.transports.periodic_store import periodic_store
from yadtq.worker import control as control_module
from yadtq.worker import scheduler as sched
from yadtq.worker import terminate as terminate_module
from yadtq.worker.control import ControlListener
from yadtq.worker.pools import ThreadPool
from yadtq.worker.scheduler import Scheduler
from yadtq.worker.terminate import Terminator
from yadtq.worker.ticker import STORED_LOOK_INTERVAL, Ticker

pytestmark = pytest.mark.timeout(60)


def _app() -> YADTQ:
    return YADTQ("idle", broker="memory://", backend="memory://")


def _until(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_scheduler_sleeps_longer_while_wake_ups_are_pushed() -> None:
    scheduler = Scheduler(_app())
    assert scheduler.next_wait() == sched.IDLE_INTERVAL
    pushed = [True]
    scheduler.pushed = lambda: pushed[0]
    assert scheduler.next_wait() == sched.PUSHED_IDLE_INTERVAL > sched.IDLE_INTERVAL
    pushed[0] = False  # the listener lost its connection: back to the short pace
    assert scheduler.next_wait() == sched.IDLE_INTERVAL


def test_a_woken_control_listener_takes_its_command_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without wake() the command below would wait for the (here 60 s) fallback look.
    monkeypatch.setattr(control_module, "PUSHED_CONTROL_POLL", 60.0)
    app = _app()
    pool = ThreadPool(app, 2, "w", lambda job, outcome: None)
    stopped = threading.Event()
    listener = ControlListener(app, "w", pool, shutdown=stopped.set)
    listener.pushed = lambda: True
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # let it settle into its long wait
        app.backend.send_control(["w"], {"op": "shutdown"})
        listener.wake()
        assert stopped.wait(15)  # taken when woken, long before 60 s
    finally:
        started = time.monotonic()
        listener.stop()
        thread.join(15)
    assert not thread.is_alive() and time.monotonic() - started < 10  # stop ends the wait


def test_the_terminator_looks_only_while_tasks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminate_module, "IDLE_WAIT", 60.0)
    app = _app()
    pool = ThreadPool(app, 2, "w", lambda job, outcome: None)
    terminator = Terminator(app, pool, interval=0.01)
    looks: list[int] = []

    def look() -> int:
        looks.append(1)
        return 0

    monkeypatch.setattr(terminator, "look", look)
    thread = threading.Thread(target=terminator.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        assert looks == []  # idle pool: no look at all (it used to be four a second)
        job: Any = type("J", (), {"envelope": type("E", (), {"id": "t1"})()})()
        pool._begin(job)  # a task starts: the terminator wakes and looks
        assert _until(lambda: len(looks) >= 3)
    finally:
        started = time.monotonic()
        terminator.stop()
        thread.join(15)
    assert not thread.is_alive() and time.monotonic() - started < 10


def test_the_ticker_sleeps_while_the_backend_holds_no_schedule() -> None:
    app = _app()  # declares no periodic schedule
    ticker = Ticker(app)
    assert ticker.turn() == 0
    assert ticker.wait_hint() == float("inf")
    # One added from the command line (`yadtq schedule add`): looked at, claimed when due.
    store = periodic_store(app.backend)
    schedule = Schedule(name="cli", task="t", every=3600.0)
    store.save_periodic("cli", schedule.encode(), app.now() - 1)
    ticker._next_look = 0.0
    assert ticker.turn() == 1
    assert ticker.wait_hint() == STORED_LOOK_INTERVAL
    assert app.backend.next_due() is not None  # the tick is in the schedule, due now
    store.pause_periodic("cli", True)
    ticker._next_look = 0.0
    assert ticker.turn() == 0
    assert ticker.wait_hint() == float("inf")  # only a paused one: nothing to look for
