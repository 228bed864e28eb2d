"""The contract of operator support on every transport: dead letters (list with reasons,
requeue, purge), failed messages kept for retry, and the control channel."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from yadtq.transports.base import Broker, FailedMessage, Message, ResultBackend

from .test_broker_contract import bodies, collect, drain_to_marker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def broker(broker_kind: str, broker_factory: Callable[..., Broker], unique: str) -> Broker:
    """On Kafka, a namespace of this test's own: purging its dead-letter topic must not
    touch others'."""
    if broker_kind == "kafka":
        return broker_factory(namespace=f"ops-{unique}")
    return broker_factory()


def dead_letter(broker: Broker, queue: str, count: int) -> None:
    broker.publish([Message(queue, f"poison-{i}".encode(), key=b"k",
                            headers={"yadtq-task": b"nope", "yadtq-id": f"id-{i}".encode()})
                    for i in range(count)])
    consumer = broker.consumer([queue])
    for delivery in sorted(collect(consumer, count, done=False), key=lambda d: d.body):
        consumer.dead_letter(delivery, f"task 'nope' is not registered ({delivery.body.decode()})")
    consumer.close()


def test_dead_letters_are_listed_with_ids_and_reasons(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    before = time.time() - 5
    dead_letter(broker, queue, 3)
    letters = broker.list_dead_letters()
    assert [d.body for d in letters] == [b"poison-0", b"poison-1", b"poison-2"]
    assert len({d.id for d in letters}) == 3
    first = letters[0]
    assert first.queue == queue
    assert first.reason == "task 'nope' is not registered (poison-0)"
    assert first.task == "nope" and first.task_id == "id-0"
    assert first.key == b"k"
    assert first.timestamp >= before
    assert [d.body for d in broker.list_dead_letters(limit=2)] == [b"poison-1", b"poison-2"]


def test_requeue_sends_chosen_dead_letters_back_once(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    dead_letter(broker, queue, 3)
    letters = broker.list_dead_letters()
    requeued = broker.requeue_dead_letters([letters[1].id])
    assert [d.body for d in requeued] == [b"poison-1"]
    assert [d.body for d in broker.list_dead_letters()] == [b"poison-0", b"poison-2"]
    consumer = broker.consumer([queue])
    got = collect(consumer, 1)
    consumer.close()
    assert bodies(got) == [b"poison-1"]
    assert got[0].headers.get("yadtq-id") == b"id-1"
    assert broker.requeue_dead_letters([letters[1].id]) == []  # already requeued
    everything = broker.requeue_dead_letters()
    assert sorted(d.body for d in everything) == [b"poison-0", b"poison-2"]
    assert broker.list_dead_letters() == []
    assert sorted(drain_to_marker(broker, queue)) == [b"poison-0", b"poison-2"]


def test_purge_drops_every_dead_letter(broker: Broker, queue_name: Callable[[str], str]) -> None:
    dead_letter(broker, queue_name("q"), 2)
    assert broker.purge_dead_letters() == 2
    assert broker.list_dead_letters() == []
    assert broker.purge_dead_letters() == 0


def test_failed_messages_are_kept_and_taken_once(backend: ResultBackend) -> None:
    now = time.time()
    backend.keep_failed([FailedMessage("t1", "app.add", now - 2, b"body-1"),
                         FailedMessage("t2", "app.div", now - 1, b"body-2")])
    kept = backend.failed_messages()
    assert [(m.task_id, m.name, m.body) for m in kept] == [("t2", "app.div", b"body-2"),
                                                           ("t1", "app.add", b"body-1")]
    assert abs(kept[1].failed - (now - 2)) < 0.01
    assert [m.task_id for m in backend.failed_messages(limit=1)] == ["t2"]
    taken = backend.take_failed(["t1", "missing"])
    assert taken[0] is not None and taken[0].body == b"body-1"
    assert taken[1] is None
    assert backend.take_failed(["t1"]) == [None]
    assert [m.task_id for m in backend.failed_messages()] == ["t2"]


def test_control_commands_reach_only_their_worker_in_order(
        backend_peers: Callable[[int], list[ResultBackend]]) -> None:
    sender, worker = backend_peers(2)
    sender.send_control(["w1", "w2"], {"op": "pool-grow", "n": 2})
    sender.send_control(["w1"], {"op": "shutdown"})
    assert worker.take_control("w1") == [{"op": "pool-grow", "n": 2}, {"op": "shutdown"}]
    assert worker.take_control("w1") == []
    assert worker.take_control("w2") == [{"op": "pool-grow", "n": 2}]
    assert worker.take_control("w3") == []


def test_queues_with_tasks_are_those_holding_messages_not_done(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    busy, idle = queue_name("busy"), queue_name("idle")
    broker.publish([Message(busy, b"waits"), Message(idle, b"runs")])
    broker.flush(10)
    consumer = broker.consumer([idle])
    assert bodies(collect(consumer, 1)) == [b"runs"]  # and done
    consumer.close()
    found = broker.queues_with_tasks()
    assert busy in found and idle not in found
