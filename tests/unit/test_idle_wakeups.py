"""An idle worker blocks on wake-ups instead of short timers (issue 9): the scheduler
sleeps until the next due message, and SQLite consumers are woken by publishers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from yadtq import YADTQ
from yadtq.settings import load_settings
from yadtq.transports import base
from yadtq.transports.sqlite import broker as sqlite_broker
from yadtq.transports.sqlite.broker import SqliteBroker
from yadtq.worker import scheduler as sched
from yadtq.worker.scheduler import Scheduler

pytestmark = pytest.mark.timeout(60)


def _schedule(app: YADTQ, task_id: str, eta: float) -> None:
    message = base.Message("q", b"body", task_id.encode())
    app.backend.record([base.StateChange(task_id, "scheduled", time.time(), eta=eta)],
                       [base.ScheduledMessage(task_id, eta, message)])


def test_scheduler_sleeps_until_the_next_due_message_or_its_cap() -> None:
    app = YADTQ("sched", broker="memory://", backend="memory://")
    scheduler = Scheduler(app)
    assert scheduler.next_wait() == sched.IDLE_INTERVAL  # nothing scheduled
    _schedule(app, "later", time.time() + 600)
    assert scheduler.next_wait() == sched.IDLE_INTERVAL
    _schedule(app, "soon", time.time() + 0.5)
    assert sched.INTERVAL < scheduler.next_wait() <= 0.5
    _schedule(app, "due", time.time() - 1)
    assert scheduler.next_wait() == sched.INTERVAL  # due now: look again soon


def test_a_woken_scheduler_publishes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without wake() the message below would wait for the (here 30 s) idle pace.
    monkeypatch.setattr(sched, "IDLE_INTERVAL", 30.0)
    app = YADTQ("sched", broker="memory://", backend="memory://")
    scheduler = Scheduler(app)
    scheduler.start()
    try:
        time.sleep(0.3)  # let it settle into its idle wait
        _schedule(app, "now", time.time() - 0.01)
        scheduler.wake()
        deadline = time.monotonic() + 10
        while app.backend.next_due() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.backend.next_due() is None  # published and released long before 30 s
    finally:
        scheduler.stop()


def test_an_idle_sqlite_consumer_is_woken_by_a_publish(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the wake-up the fetch below would only re-read the table after 30 s.
    monkeypatch.setattr(sqlite_broker, "NOTIFY_RECHECK", 30.0)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    settings = load_settings(broker=url, backend=url)
    receiving, sending = SqliteBroker(url, settings), SqliteBroker(url, settings)
    consumer = receiving.consumer(["q"])
    assert consumer._listener is not None  # type: ignore[attr-defined]
    got: list[bytes] = []
    fetcher = threading.Thread(target=lambda: got.extend(d.body for d in consumer.fetch(1, 25.0)))
    fetcher.start()
    time.sleep(0.3)  # let it block on its socket (a publish before that is found by the read)
    started = time.monotonic()
    sending.publish([base.Message("q", b"wake", b"k")])
    fetcher.join(30)
    assert got == [b"wake"]
    assert time.monotonic() - started < 15.0  # generous: woken, not timed out at 25 s
    consumer.close()
    receiving.close()
    sending.close()
    assert not Path(str(tmp_path / "q.db") + "-queue.notify").exists()  # the last listener cleaned up


class _Fetching:
    """A consumer that records how long each fetch may block."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def fetch(self, max_items: int, timeout: float) -> list[base.Delivery]:
        self.timeouts.append(timeout)
        return []

    def owns(self, delivery: base.Delivery) -> bool:
        return True


def test_an_idle_worker_fetches_with_the_long_wait_unless_deliveries_are_parked() -> None:
    import queue

    from yadtq.envelope import Envelope
    from yadtq.worker import consumer as consumer_module
    from yadtq.worker.attempts import Identity, Pending, WorkerStats
    from yadtq.worker.consumer import TaskConsumer
    from yadtq.worker.pools import ThreadPool

    app = YADTQ("idle", broker="memory://", backend="memory://", heartbeat_interval=5)
    fetching = _Fetching()
    pool = ThreadPool(app, 2, "w", lambda job, outcome: None)
    tasks = TaskConsumer(app, fetching, pool, Identity("w", "w#1"), WorkerStats(),  # type: ignore[arg-type]
                         queue.SimpleQueue(), threading.Event())
    tasks.turn()
    assert fetching.timeouts == [consumer_module.IDLE_FETCH_TIMEOUT]
    # A parked delivery must be claimed again soon: the loop comes back at the short pace.
    tasks._parked[("t", 0)] = Pending(Envelope(id="t", task="x"), base.Delivery(b"", "q", token=1))
    tasks._next_reclaim = float("inf")
    tasks.turn()
    assert fetching.timeouts[-1] == consumer_module.FETCH_TIMEOUT
    # Health needs a turn every two heartbeats: the long wait stays within half of one.
    quick = YADTQ("idle", broker="memory://", backend="memory://", heartbeat_interval=0.4)
    assert TaskConsumer(quick, fetching, pool, Identity("w", "w#2"), WorkerStats(),  # type: ignore[arg-type]
                        queue.SimpleQueue(), threading.Event()).idle_fetch_timeout <= 0.2


def test_a_long_idle_worker_waits_longer_and_a_delivery_brings_back_the_short_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import queue

    from yadtq.worker import consumer as consumer_module
    from yadtq.worker.attempts import Identity, WorkerStats
    from yadtq.worker.consumer import TaskConsumer
    from yadtq.worker.pools import ThreadPool

    app = YADTQ("idle", broker="memory://", backend="memory://", heartbeat_interval=5)
    fetching = _Fetching()
    pool = ThreadPool(app, 2, "w", lambda job, outcome: None)
    tasks = TaskConsumer(app, fetching, pool, Identity("w", "w#1"), WorkerStats(),  # type: ignore[arg-type]
                         queue.SimpleQueue(), threading.Event())
    tasks.turn()  # just started: the short wait
    tasks._last_delivery = time.monotonic() - consumer_module.LONG_IDLE_AFTER + 2.0
    tasks.turn()  # idle, not yet for long
    tasks._last_delivery = time.monotonic() - consumer_module.LONG_IDLE_AFTER - 0.1
    tasks.turn()
    assert fetching.timeouts == [consumer_module.IDLE_FETCH_TIMEOUT] * 2 + [
        consumer_module.LONG_IDLE_FETCH_TIMEOUT]
    assert consumer_module.LONG_IDLE_FETCH_TIMEOUT > consumer_module.IDLE_FETCH_TIMEOUT

    # A delivery ends the long wait: the next fetches are back at the short pace.
    dispatched: list[int] = []
    def deliver(max_items: int, timeout: float) -> list[base.Delivery]:
        fetching.timeouts.append(timeout)
        return [base.Delivery(b"", "q", token=1)]

    monkeypatch.setattr(fetching, "fetch", deliver)
    monkeypatch.setattr(tasks, "dispatch", lambda deliveries: dispatched.append(len(deliveries)))
    tasks.turn()
    assert dispatched == [1]
    assert fetching.timeouts[-1] == consumer_module.LONG_IDLE_FETCH_TIMEOUT
    tasks.turn()
    assert fetching.timeouts[-1] == consumer_module.IDLE_FETCH_TIMEOUT

    # Health needs a turn every two heartbeats: the longer wait stays within half of one.
    quick = YADTQ("idle", broker="memory://", backend="memory://", heartbeat_interval=0.4)
    assert TaskConsumer(quick, fetching, pool, Identity("w", "w#2"), WorkerStats(),  # type: ignore[arg-type]
                        queue.SimpleQueue(), threading.Event()).long_idle_fetch_timeout <= 0.2


def test_an_idle_recorder_blocks_until_an_outcome_or_its_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import queue

    from yadtq.worker import recorder as recorder_module
    from yadtq.worker.attempts import Identity, WorkerStats
    from yadtq.worker.consumer import TaskConsumer

    monkeypatch.setattr(recorder_module, "RECORDER_WAIT", 60.0)
    app = YADTQ("idle", broker="memory://", backend="memory://")
    waits: list[object] = []

    class Outcomes(queue.Queue):  # type: ignore[type-arg]
        def get(self, block: bool = True, timeout: object = None) -> object:
            waits.append(timeout)
            return super().get(block, timeout)  # type: ignore[arg-type]

    outcomes = Outcomes()
    tasks = TaskConsumer(app, _Fetching(), None, Identity("w", "w#1"), WorkerStats(),  # type: ignore[arg-type]
                         outcomes, threading.Event())  # type: ignore[arg-type]
    stop = threading.Event()
    recorder = threading.Thread(target=tasks.record_forever, args=(stop,), daemon=True)
    recorder.start()
    time.sleep(0.5)
    assert waits == [60.0] and recorder.is_alive()  # one blocking wait, no 0.1 s polling
    stop.set()
    outcomes.put(None)  # what the worker does when it stops
    recorder.join(30)
    assert not recorder.is_alive()  # woken, not left to its 60 s wait
