"""Priorities (DESIGN.md section 12): validation, the wire, lanes, and the in-process broker's order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from yadtq import YADTQ
from yadtq.envelope import HEADER_ID, decode, encode, from_body, verify
from yadtq.exceptions import ConfigurationError, ProtocolError
from yadtq.priority import HEADER_PRIORITY, lane_label, lane_of, priority_of
from yadtq.transports.base import Message

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app() -> YADTQ:
    return YADTQ("prio", broker="memory://", backend="memory://")


def waiting_bodies(app: YADTQ, queue: str = "default") -> list[dict[str, object]]:
    consumer = app.broker.consumer([queue])
    deliveries = consumer.fetch(100, 0.1)
    return [verify(d.body) | {"_headers": dict(d.headers)} for d in deliveries]


@pytest.mark.parametrize("bad", [10, -1, 2.5, "high", True, None])
def test_a_bad_priority_is_refused_at_decoration(app: YADTQ, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="priority must be an integer from 0 to 9"):
        app.task(priority=bad)(lambda: None)


@pytest.mark.parametrize("bad", [10, -1, 1.0, "9", False])
def test_a_bad_priority_is_refused_at_call_time_and_nothing_is_sent(app: YADTQ, bad: object) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigurationError, match="priority"):
        add.apply_async((1, 2), priority=bad)
    with pytest.raises(ConfigurationError, match="priority"):
        app.send_task("add", (1, 2), priority=bad)
    with pytest.raises(ConfigurationError, match="priority"):
        add.s(1, 2).set(priority=bad)
    assert app.broker.depth("default") == 0


def test_priority_travels_in_options_and_header_and_not_at_the_default(app: YADTQ) -> None:
    @app.task(priority=4)
    def urgent() -> None: ...

    @app.task
    def plain() -> None: ...

    plain.delay()
    plain.apply_async(priority=0)
    urgent.delay()  # the task's own level
    plain.apply_async(priority=7)  # a call's level wins
    urgent.apply_async(priority=0)  # ... also when it is the default
    bodies = waiting_bodies(app)
    levels = [(b["options"].get("priority"), b["_headers"].get(HEADER_PRIORITY))  # type: ignore[union-attr]
              for b in bodies]
    # The memory broker hands out the highest level first, then in arrival order.
    assert levels == [(7, b"7"), (4, b"4"), (None, None), (None, None), (None, None)]


def test_signature_and_canvas_carry_the_priority(app: YADTQ) -> None:
    @app.task(priority=6)
    def step(x: int) -> int:
        return x

    step.s(1).set(priority=9).delay()
    step.s(2).delay()
    (step.s(3) | step.s()).apply_async()  # a chain's first task, at the task's own level
    got = {b["args"][0]: b["options"].get("priority") for b in waiting_bodies(app)}  # type: ignore[index,union-attr]
    assert got == {1: 9, 2: 6, 3: 6}


def test_a_retry_keeps_its_priority_header(app: YADTQ) -> None:
    @app.task
    def t() -> None: ...

    t.apply_async(priority=8)
    (body,) = waiting_bodies(app)
    envelope = from_body(body)
    retry = envelope.next_attempt(eta=0.0)
    assert retry.headers()[HEADER_PRIORITY] == b"8"
    assert decode(encode(retry)).options["priority"] == 8


@pytest.mark.parametrize("bad", [10, -3, "5", 1.5, True])
def test_a_message_with_a_bad_priority_is_malformed(app: YADTQ, bad: object) -> None:
    @app.task
    def t() -> None: ...

    t.delay()
    (body,) = waiting_bodies(app)
    body.pop("_headers")
    body["options"] = {"priority": bad}
    with pytest.raises(ProtocolError, match="malformed option priority"):
        from_body(body)


def test_headers_are_read_leniently_by_brokers() -> None:
    assert priority_of({}) == 0
    assert priority_of({HEADER_PRIORITY: b"9"}) == 9
    assert priority_of({HEADER_PRIORITY: b"99"}) == 0
    assert priority_of({HEADER_PRIORITY: b"x"}) == 0


def test_levels_map_onto_three_lanes() -> None:
    assert [lane_of(level) for level in range(10)] == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [lane_label(lane) for lane in range(3)] == ["0-3", "4-6", "7-9"]


def test_kafka_lane_topics_are_built_from_the_queue_topic() -> None:
    kafka = pytest.importorskip("yadtq.transports.kafka_naming")
    from yadtq.namespace import Naming

    for naming in (Naming(), Naming("shop")):
        base = kafka.topic_for(naming, "math")
        assert base == f"{naming.namespace}.math"
        assert kafka.lane_topics(naming, "math") == [base, base + ".prio4", base + ".prio7"]
        for topic in kafka.lane_topics(naming, "my.queue-1"):
            assert kafka.queue_of_topic(naming, topic) == "my.queue-1"
        assert kafka.queue_of_topic(naming, naming.dlq_topic) is None
        with pytest.raises(ConfigurationError, match="reserved for priority lanes"):
            kafka.topic_for(naming, "math.prio7")
    assert kafka.queue_of_topic(Naming("shop"), "yadtq.math.prio4") is None


def test_memory_broker_takes_the_highest_priority_across_queues(app: YADTQ) -> None:
    broker = app.broker

    def msg(queue: str, name: str, level: int) -> Message:
        headers = {HEADER_ID: name.encode()}
        if level:
            headers[HEADER_PRIORITY] = str(level).encode()
        return Message(queue, name.encode(), headers=headers)

    broker.publish([msg("a", "a0", 0), msg("b", "b0", 0), msg("a", "a5", 5), msg("b", "b9", 9),
                    msg("a", "a5'", 5)])
    assert broker.depth_by_priority("a") == {"0": 1, "5": 2}
    peeked = broker.peek("a")
    assert peeked is not None and peeked.body == b"a5"
    consumer = broker.consumer(["a", "b"])
    taken = [d.body for d in consumer.fetch(3, 0.1)]
    assert taken == [b"b9", b"a5", b"a5'"]
    consumer.close()  # hands back the two unfinished at the front of their level
    consumer = broker.consumer(["a", "b"])
    assert sorted(d.body for d in consumer.fetch(10, 0.1)) == [b"a0", b"a5", b"a5'", b"b0", b"b9"]


def test_sqlite_broker_upgrades_an_older_database_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE yadtq_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,"
        " body BLOB NOT NULL, key BLOB, headers BLOB, visible_after REAL NOT NULL DEFAULT 0,"
        " consumer TEXT);"
        "CREATE INDEX yadtq_messages_visible ON yadtq_messages (queue, visible_after, id);"
        "INSERT INTO yadtq_messages (queue, body) VALUES ('default', x'01');")
    conn.commit()
    conn.close()
    app = YADTQ("old", broker=f"sqlite:///{path}", backend="memory://")
    app.broker.publish([Message("default", b"\x02", headers={HEADER_PRIORITY: b"9"})])
    assert app.broker.depth_by_priority("default") == {"0": 1, "9": 1}
    consumer = app.broker.consumer(["default"])
    assert [d.body for d in consumer.fetch(2, 1.0)] == [b"\x02", b"\x01"]
    consumer.close()
    app.close()
    conn = sqlite3.connect(path)
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(yadtq_messages)")}
    plan = " ".join(str(row) for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM yadtq_messages WHERE queue = 'default' AND visible_after = 0"
        " ORDER BY priority DESC, id LIMIT 5"))
    conn.close()
    assert indexes == {"yadtq_messages_priority"}
    assert "yadtq_messages_priority" in plan and "TEMP B-TREE" not in plan


def test_periodic_ticks_have_their_tasks_priority(app: YADTQ) -> None:
    from yadtq.worker.ticker import tick_message

    @app.task(priority=7)
    def sweep() -> None: ...

    schedule = app.add_periodic_task("sweep", sweep, every=60)
    entry = tick_message(app, schedule, 1000.0, 1000.0)
    assert entry.message.headers[HEADER_PRIORITY] == b"7"
    assert decode(entry.message.body).options == {"priority": 7}
