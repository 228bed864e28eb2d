"""Wake-ups over Redis pub/sub (issue 9, an idle worker waits instead of asking): a
control command, a schedule entry that becomes the earliest, and a saved periodic
schedule each wake a worker's listener, whichever process caused them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from yadtq import YADTQ
from yadtq.transports.base import Message, ScheduledMessage, StateChange
from yadtq.transports.redis import RedisBackend
from yadtq.transports.wakeups import WAKE_CONTROL, WAKE_SCHEDULE, wakeup_source
from yadtq.worker import scheduler as sched
from yadtq.worker.scheduler import Scheduler

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.timeout(90)]


class Wakes:
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.cond = threading.Condition()

    def __call__(self, kind: str) -> None:
        with self.cond:
            self.kinds.append(kind)
            self.cond.notify_all()

    def wait_for(self, kind: str, after: int = 0, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: kind in self.kinds[after:], timeout)


@pytest.fixture
def apps(redis_url: str, unique: str) -> Iterator[Callable[[], YADTQ]]:
    made: list[YADTQ] = []

    def make() -> YADTQ:
        app = YADTQ("wake", broker="memory://", backend=redis_url,
                    backend_options={"prefix": f"wake-{unique}"})
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def _schedule(app: YADTQ, task_id: str, due: float) -> None:
    app.backend.record([StateChange(task_id, "scheduled", time.time(), eta=due)],
                       [ScheduledMessage(task_id, due, Message("q", b"body", task_id.encode()))])


def test_control_schedule_and_periodic_changes_wake_the_listener(apps: Callable[[], YADTQ]) -> None:
    worker, client = apps(), apps()
    source = wakeup_source(worker.backend)
    assert isinstance(worker.backend, RedisBackend) and source is not None
    wakes = Wakes()
    watch = source.watch_wakeups("w1", wakes)
    try:
        assert watch.live
        seen = len(wakes.kinds)
        client.backend.send_control(["w1"], {"op": "shutdown"})
        assert wakes.wait_for(WAKE_CONTROL, seen)
        seen = len(wakes.kinds)
        _schedule(client, "soon", time.time() + 600)  # the schedule's first entry
        assert wakes.wait_for(WAKE_SCHEDULE, seen)
        seen = len(wakes.kinds)
        _schedule(client, "sooner", time.time() + 60)  # now the earliest
        assert wakes.wait_for(WAKE_SCHEDULE, seen)
        _schedule(client, "later", time.time() + 6000)  # changes nothing planned: no wake
        seen = len(wakes.kinds)
        client.backend.save_periodic("cli", b"spec", time.time() + 30)  # type: ignore[attr-defined]
        assert wakes.wait_for(WAKE_SCHEDULE, seen)
        assert wakes.kinds[seen:].count(WAKE_SCHEDULE) == 1  # the 'later' entry woke nobody
        assert client.backend.take_control("w1") == [{"op": "shutdown"}]  # the command itself
    finally:
        started = time.monotonic()
        watch.close()
    assert not watch.live and time.monotonic() - started < 5  # woken to stop, not left to time out


def test_a_clients_countdown_wakes_a_sleeping_scheduler(apps: Callable[[], YADTQ],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the wake-up the scheduler below would sleep its whole (here 60 s) fallback.
    monkeypatch.setattr(sched, "PUSHED_IDLE_INTERVAL", 60.0)
    worker, client = apps(), apps()
    scheduler = Scheduler(worker)
    source = wakeup_source(worker.backend)
    assert source is not None
    watch = source.watch_wakeups("w2", lambda kind: scheduler.wake() if kind == WAKE_SCHEDULE else None)
    scheduler.pushed = lambda: watch.live
    scheduler.start()
    try:
        time.sleep(0.5)  # let it settle into its long sleep
        due = client.now() + 1.0
        _schedule(client, "countdown", due)
        deadline = time.monotonic() + 30
        while client.backend.next_due() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        published = client.now()
        assert client.backend.next_due() is None  # published and released
        assert published - due < 10  # woken and on time, not after the 60 s fallback
        got: list[Any] = worker.broker.consumer(["q"]).fetch(1, 5)
        assert [d.key for d in got] == [b"countdown"]
    finally:
        scheduler.stop()
        watch.close()


@pytest.mark.timeout(180)
def test_wake_ups_cross_a_redis_cluster(redis_cluster: Any, unique: str) -> None:
    """On Redis Cluster the listener hears what scripts publish on every node: entries of
    several slot groups, and a control command."""
    url = redis_cluster.url
    worker = YADTQ("wake", broker="memory://", backend=url, backend_options={"prefix": f"wake-{unique}"})
    client = YADTQ("wake", broker="memory://", backend=url, backend_options={"prefix": f"wake-{unique}"})
    source = wakeup_source(worker.backend)
    assert source is not None
    wakes = Wakes()
    watch = source.watch_wakeups("wc", wakes)
    try:
        ids = [f"c{n}" for n in range(20)]
        assert len({client.backend.layout.group(t) for t in ids}) > 4  # type: ignore[attr-defined]
        for n, task_id in enumerate(ids):  # each the first entry of its group's schedule
            seen = len(wakes.kinds)
            _schedule(client, task_id, time.time() + 600 - n)
            assert wakes.wait_for(WAKE_SCHEDULE, seen), task_id
        seen = len(wakes.kinds)
        client.backend.send_control(["wc"], {"op": "shutdown"})
        assert wakes.wait_for(WAKE_CONTROL, seen)
    finally:
        watch.close()
        worker.close()
        client.close()
