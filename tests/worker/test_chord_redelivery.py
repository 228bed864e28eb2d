"""A canvas task delivered again after its outcome was stored completes its follow-ups.

On Redis Cluster a member's outcome (its record step) and its chord count (the join
step, in the chord's slot group) are two steps: a worker killed between them leaves
the outcome stored, the count missing and the delivery not reported done. The test
makes exactly that state (the first join of a member is dropped after its record step),
then delivers the member's message again, as the broker does after the kill: the claim
finds the task finished and must complete the count, so the callback runs exactly once.
On one Redis and on SQLite the two are one step, so the state can only come from this
simulation there, and a copy of a member counted already must change nothing. The
same holds for a chain's next step stored in another slot group than the step before.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import pytest

from yadtq import YADTQ, ChordError, chain, chord
from yadtq.canvas.group_result import canvas_backend
from yadtq.envelope import decode
from yadtq.transports.base import Message, ScheduledMessage, StateChange
from yadtq.transports.canvas_store import CHORD_FAILED, CHORD_FIRED, ChordJoin
from yadtq.worker.main import Worker

pytestmark = pytest.mark.timeout(90)

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis),
            pytest.param("redis-cluster", marks=pytest.mark.redis)]
RESULT_TIMEOUT = 30.0


class Rig:
    """An app on memory:// with the backend under test, its sent messages kept by task id,
    and the joins of the first step that counts chord members lost after its record step
    (their task ids in ``lost``)."""

    def __init__(self, backend_url: str, prefix: str) -> None:
        options = {"prefix": prefix} if backend_url.startswith("redis") else {}
        self.app = YADTQ(f"chordjoin-{prefix}", broker="memory://", backend=backend_url,
                         backend_options=options)
        self.sent: dict[str, Message] = {}
        self.published: Counter[str] = Counter()
        self.lost: list[ChordJoin] = []
        #: Set by a test: the first step that stores follow-up messages loses them (its
        #: task ids go to ``lost_steps``), as a kill between slot groups does on a cluster.
        self.lose_follow_ups = False
        self.lost_steps: list[str] = []
        self.callback_runs = 0
        self.lock = threading.Lock()
        app = self.app

        @app.task(name="t.add")
        def add(x: int, y: int) -> int:
            return x + y

        @app.task(name="t.boom", max_retries=0)
        def boom() -> None:
            raise KeyError("boom")

        @app.task(name="t.total")
        def total(values: list[int]) -> int:
            with self.lock:
                self.callback_runs += 1
            return sum(values)

        self.add, self.boom, self.total = add, boom, total

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        broker, store = self.app.broker, canvas_backend(self.app)
        publish, record_joined, record = broker.publish, store.record_joined, self.app.backend.record

        def keep(messages: Any, *args: Any, **kwargs: Any) -> Any:
            messages = list(messages)
            for m in messages:
                task_id = decode(m.body, self.app.settings.secret_key).id
                self.sent[task_id] = m
                self.published[task_id] += 1
            return publish(messages, *args, **kwargs)

        def lose_join(changes: list[StateChange], scheduled: list[ScheduledMessage],
                      joins: list[ChordJoin]) -> None:
            with self.lock:
                lose = bool(joins) and not self.lost
                if lose:
                    self.lost = list(joins)
            if lose:  # the record step alone: what a kill before the join step leaves
                self.app.backend.record(changes, scheduled)
                return
            record_joined(changes, scheduled, joins)

        def lose_follow_ups(changes: Sequence[StateChange],
                            scheduled: Sequence[ScheduledMessage] = ()) -> None:
            with self.lock:
                lose = self.lose_follow_ups and bool(scheduled) and any(
                    c.state == "success" for c in changes)
                if lose:
                    self.lose_follow_ups = False
                    self.lost_steps = [c.task_id for c in changes]
            record(changes, [] if lose else scheduled)

        monkeypatch.setattr(broker, "publish", keep)
        monkeypatch.setattr(self.app.backend, "record", lose_follow_ups)
        monkeypatch.setattr(store, "record_joined", lose_join)

    def redeliver(self, task_id: str) -> None:
        """The member's message once more, as the broker delivers it after a kill."""
        self.app.broker.publish([self.sent[task_id]])

    def settled(self) -> None:
        """Wait until every copy sent so far was handled: two tasks, each sent after the
        one before ran (the first may run beside the copies' claim, the second cannot)."""
        for _ in range(2):
            assert self.add.delay(20, 22).get(timeout=RESULT_TIMEOUT) == 42


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, sqlite_url: str,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    kind = str(request.param)
    if kind == "sqlite":
        url = sqlite_url
    else:
        pytest.importorskip("yadtq.transports.redis")
        fixture = "redis_cluster" if kind == "redis-cluster" else "redis_url"
        value = request.getfixturevalue(fixture)
        url = str(value.url if kind == "redis-cluster" else value)
    made = Rig(url, f"yadtq-test-cj-{uuid.uuid4().hex[:10]}")
    made.patch(monkeypatch)
    worker = Worker(made.app, name="chordjoin-worker", concurrency=2).start()
    try:
        yield made
    finally:
        worker.stop()
        made.app.close()


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_redelivered_member_completes_a_lost_count_and_the_callback_runs_once(rig: Rig) -> None:
    result = chord([rig.add.s(i, i) for i in range(3)], rig.total.s()).apply_async()
    chord_id = result.parent.id
    assert _eventually(lambda: bool(rig.lost) and all(r.ready() for r in result.parent.results))
    store = canvas_backend(rig.app)
    info = store.group_info(chord_id)
    assert info is not None and info.state == "open" and info.done < 3  # one count short
    rig.settled()  # this worker is done with the first copies (the killed one would be gone)
    for join in rig.lost:  # the kill left these deliveries not reported done
        rig.redeliver(join.task_id)
    assert result.get(timeout=RESULT_TIMEOUT) == 6
    assert rig.callback_runs == 1
    # A copy of a member already counted, and of the lost one again, change nothing.
    rig.redeliver(rig.lost[0].task_id)
    rig.redeliver(next(i for i in (r.id for r in result.parent.results)
                       if i not in {j.task_id for j in rig.lost}))
    rig.settled()
    info = store.group_info(chord_id)
    assert info is not None and info.state == CHORD_FIRED and info.done == 3
    assert rig.callback_runs == 1


def test_a_redelivered_failed_member_fails_the_chord_once(rig: Rig) -> None:
    result = chord([rig.boom.s()], rig.total.s()).apply_async()
    with pytest.raises(ChordError):  # stored with the member's outcome, in its record step
        result.get(timeout=RESULT_TIMEOUT)
    store = canvas_backend(rig.app)
    info = store.group_info(result.parent.id)
    assert rig.lost and info is not None and info.state == "open"  # the count was lost
    rig.settled()
    rig.redeliver(rig.lost[0].task_id)
    rig.settled()
    info = store.group_info(result.parent.id)
    assert info is not None and info.state == CHORD_FAILED
    assert info.failed_member == rig.lost[0].task_id
    with pytest.raises(ChordError):
        result.get(timeout=RESULT_TIMEOUT)
    assert rig.callback_runs == 0


def test_a_redelivered_chain_step_sends_a_lost_next_step(rig: Rig) -> None:
    rig.lose_follow_ups = True
    result = chain(rig.add.s(1, 1), rig.add.s(10), rig.add.s(100)).apply_async()
    assert _eventually(lambda: bool(rig.lost_steps))
    rig.settled()
    assert result.parent is not None
    assert rig.app.backend.get([result.parent.id]) == [None]  # the next step was never sent
    rig.redeliver(rig.lost_steps[0])
    assert result.get(timeout=RESULT_TIMEOUT) == 112
    # Once the next step has a record, another copy of the first sends nothing again.
    rig.redeliver(rig.lost_steps[0])
    rig.settled()
    assert rig.published[result.parent.id] == 1
