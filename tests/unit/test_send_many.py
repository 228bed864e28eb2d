"""``app.send_many``: many tasks in one broker call and one backend call (issue 9),
with the same messages, options, dedupe and errors as one ``.delay()`` each."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from yadtq import YADTQ, group, states
from yadtq.envelope import Envelope, PlainBodies, decode, encode, encode_body, new_body
from yadtq.exceptions import ConfigurationError, SerializationError
from yadtq.task_ids import new_task_id
from yadtq.worker.main import Worker

pytestmark = pytest.mark.timeout(60)


def _app(**settings: Any) -> YADTQ:
    app = YADTQ("bulk", broker="memory://", backend="memory://", **settings)

    @app.task(name="t.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task(name="t.once", dedupe=True)
    def once(x: int) -> int:
        return x

    return app


def _spy(app: YADTQ) -> tuple[list[list[Any]], list[tuple[Any, Any]]]:
    publishes: list[list[Any]] = []
    records: list[tuple[Any, Any]] = []
    publish, record = app.broker.publish, app.backend.record

    def spy_publish(messages: Any) -> None:
        publishes.append(list(messages))
        publish(messages)

    def spy_record(changes: Any, scheduled: Any = ()) -> Any:
        records.append((list(changes), list(scheduled)))
        return record(changes, scheduled)

    app.broker.publish = spy_publish  # type: ignore[method-assign]
    app.backend.record = spy_record  # type: ignore[method-assign]
    return publishes, records


def test_one_publish_and_one_record_for_the_whole_bulk() -> None:
    app = _app()
    add = app.tasks["t.add"]
    publishes, records = _spy(app)
    calls = [add.s(i, i) for i in range(50)] + [
        (add, (1, 2)), ("t.add", [3], {"y": 4}), ("add", (5,), None, {"queue": "other", "key": "k"}),
        add.s(7, 8).set(countdown=60), (add, (9, 9), {}, {"eta": time.time() + 60}),
    ]
    results = app.send_many(calls)
    assert len(results) == len(calls) == len({r.id for r in results})
    assert len(publishes) == 1 and len(publishes[0]) == 53
    assert len(records) == 1 and [c.state for c in records[0][0]] == [states.SCHEDULED] * 2
    bodies = {decode(m.body).id: decode(m.body) for m in publishes[0]}
    assert [(bodies[r.id].args, bodies[r.id].kwargs) for r in results[:50]] == [
        ((i, i), {}) for i in range(50)]
    assert bodies[results[51].id].kwargs == {"y": 4}
    other = bodies[results[52].id]
    assert (other.queue, other.key, other.task) == ("other", "k", "t.add")
    assert [r.state for r in results[-2:]] == [states.SCHEDULED] * 2


def test_a_worker_runs_a_bulk_with_its_results_in_order(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    app = YADTQ("bulk", broker=url, backend=url)

    @app.task(name="t.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    results = app.send_many([mul.s(i, 3) for i in range(200)] + [mul.s(2, 2).set(countdown=0.2)])
    worker = Worker(app, concurrency=4).start()
    try:
        assert [r.get(timeout=30) for r in results] == [3 * i for i in range(200)] + [4]
    finally:
        worker.stop(30)
        app.close()


def test_an_unserializable_argument_sends_nothing() -> None:
    app = _app()
    add = app.tasks["t.add"]
    publishes, records = _spy(app)
    with pytest.raises(SerializationError):
        app.send_many([add.s(1, 2), add.s(object(), 1), add.s(3, 4).set(countdown=5)])
    with pytest.raises(SerializationError):
        app.send_many([add.s(1, 2).set(countdown=5), (add, (object(),))])
    assert publishes == [] and records == []


@pytest.mark.parametrize("call, message", [
    (42, "must be a signature"),
    ((), "must be a signature"),
    ((3.5, ()), "expected a task or a task name"),
    (("t.add", 5), "args must be a tuple or list"),
    (("t.add", (), {}, {"bogus": 1}), "unknown option(s) bogus"),
])
def test_a_call_of_the_wrong_shape_is_a_clear_error(call: Any, message: str) -> None:
    app = _app()
    publishes, _ = _spy(app)
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        app.send_many([app.tasks["t.add"].s(1, 1), call])
    assert publishes == []


def test_dedupe_within_and_across_bulks() -> None:
    app = _app()
    once = app.tasks["t.once"]
    first = app.send_many([once.s(1), once.s(2), once.s(1)])
    assert first[0].id == first[2].id != first[1].id
    again = app.send_many([once.s(2)])
    assert again[0].id == first[1].id


def test_callbacks_go_through_the_canvas_and_keep_their_place() -> None:
    app = _app()
    add = app.tasks["t.add"]
    results = app.send_many([add.s(1, 1), add.s(2, 2).set(link=add.s(10)), add.s(3, 3)])
    worker = Worker(app, concurrency=2).start()
    try:
        assert [r.get(timeout=30) for r in results] == [2, 4, 6]
    finally:
        worker.stop(30)


def test_eager_apps_run_a_bulk_at_once() -> None:
    app = _app(eager=True)
    add = app.tasks["t.add"]
    results = app.send_many([add.s(i, 1) for i in range(5)] + [("t.add", (7,))])
    assert [r.get(timeout=5) for r in results] == [1, 2, 3, 4, 5, 7]


def test_a_group_is_published_in_one_call() -> None:
    app = _app()
    add = app.tasks["t.add"]
    publishes, _ = _spy(app)
    result = group(add.s(i, i) for i in range(20)).apply_async()
    assert len(publishes) == 1 and len(publishes[0]) == 20
    assert {decode(m.body).id for m in publishes[0]} == {r.id for r in result.results}


def test_plain_bodies_encode_exactly_as_the_submit_path() -> None:
    bodies = PlainBodies("t.add", "q", 1234.5)
    for args, kwargs in [((), {}), ((1, (2, 3), "x"), {"k": {1, 2}, "n": None})]:
        assert bodies.encode("a" * 32, args, kwargs) == encode_body(
            new_body("a" * 32, "t.add", args, kwargs, "q", None, None, None, 1234.5, {}))
    with pytest.raises(SerializationError):
        bodies.encode("b" * 32, (object(),), {})


def test_a_forked_child_never_reuses_the_parents_task_ids() -> None:
    new_task_id()  # the parent holds a batch of ids drawn in advance
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave without cleanup
        os.write(write, " ".join(new_task_id() for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 1 << 16).decode().split())
    os.close(read)
    parent = {new_task_id() for _ in range(20)}
    assert len(child) == 20 and not child & parent


def test_a_plain_group_sends_what_the_canvas_would_and_is_stored() -> None:
    """The short way of a group of plain signatures (``canvas/plain_group.py``): the very
    bytes of the members' envelopes (parent and root: the group), the group stored."""
    app = _app()
    add = app.tasks["t.add"]
    publishes, _ = _spy(app)
    result = group(add.s(i, y=1) for i in range(5)).apply_async()
    (sent,) = publishes
    assert [m.key for m in sent] == [r.id.encode() for r in result.results]
    for i, (message, member) in enumerate(zip(sent, result.results)):
        created = decode(message.body).created
        expected = Envelope(id=member.id, task="t.add", args=(i,), kwargs={"y": 1},
                            queue=app.settings.default_queue, parent_id=result.id,
                            root_id=result.id, created=created)
        assert message.body == encode(expected)
        assert dict(message.headers) == expected.headers()
    assert app.GroupResult(result.id).results == result.results  # stored before sending
    worker = Worker(app, concurrency=2).start()
    try:
        assert result.get(timeout=30) == [1, 2, 3, 4, 5]
    finally:
        worker.stop(30)
        app.close()
