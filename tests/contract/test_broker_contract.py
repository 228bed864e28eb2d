"""The broker contract (``yadtq.transports.base.Broker``), run against every broker."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import pytest

from yadtq.exceptions import ConfigurationError
from yadtq.settings import load_settings
from yadtq.transports.base import Broker, Consumer, Delivery, Message, create_broker

DEADLINE = 20.0


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


def collect(consumer: Consumer, count: int, *, batch: int = 64, done: bool = True,
            until: Optional[bytes] = None, deadline: float = DEADLINE) -> list[Delivery]:
    """Fetch until ``count`` deliveries (or the ``until`` body) arrived, or the deadline."""
    end = time.monotonic() + deadline
    got: list[Delivery] = []
    while time.monotonic() < end:
        if until is None and len(got) >= count:
            break
        if until is not None and until in bodies(got):
            break
        fetched = consumer.fetch(batch, 0.2)
        assert len(fetched) <= batch
        got.extend(fetched)
        if done and fetched:
            consumer.done(fetched)
    return got


def drain_to_marker(broker: Broker, queue: str) -> list[bytes]:
    """Everything a new consumer of ``queue`` gets before a freshly published marker.

    A partitioned broker orders messages only within a partition, so there the
    marker may overtake earlier messages: keep reading until a second passes empty.
    """
    marker = b"marker-" + str(time.monotonic_ns()).encode()
    broker.publish([Message(queue, marker)])
    consumer = broker.consumer([queue])
    try:
        got = bodies(collect(consumer, 0, until=marker))
        if broker.scheme == "kafka":
            while more := consumer.fetch(64, 1.0):
                consumer.done(more)
                got.extend(bodies(more))
    finally:
        consumer.close()
    assert marker in got, "the marker never arrived"
    return [b for b in got if b != marker]


def test_publish_plain_delivers_like_publish(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    """The send path's ``publish_plain`` (one queue, ``(body, key, headers)`` rows): one
    message alone and a batch each arrive whole, with their keys and headers."""
    queue = queue_name("plain")
    broker.publish_plain(queue, [(b"one", b"k0", {"yadtq-task": b"add", "yadtq-id": b"k0"})])
    broker.publish_plain(queue, [(f"m{i}".encode(), f"k{i}".encode(), {"yadtq-id": f"k{i}".encode()})
                                 for i in range(1, 6)])
    broker.publish_plain(queue, [])
    consumer = broker.consumer([queue])
    got = {d.body: d for d in collect(consumer, 6)}
    consumer.close()
    assert set(got) == {b"one", b"m1", b"m2", b"m3", b"m4", b"m5"}
    assert (got[b"one"].queue, got[b"one"].key, dict(got[b"one"].headers)) == (
        queue, b"k0", {"yadtq-task": b"add", "yadtq-id": b"k0"})
    assert all(got[f"m{i}".encode()].key == f"k{i}".encode() for i in range(1, 6))


def test_publish_then_fetch_returns_the_same_message(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    sent = [
        Message(queue, b"first", key=b"k1", headers={"yadtq-task": b"add", "x": b"\x00\xff"}),
        Message(queue, b"second"),
    ]
    broker.publish(sent)
    consumer = broker.consumer([queue])
    got = {d.body: d for d in collect(consumer, 2)}
    consumer.close()
    assert set(got) == {b"first", b"second"}
    first, second = got[b"first"], got[b"second"]
    assert (first.queue, first.key, dict(first.headers)) == (
        queue, b"k1", {"yadtq-task": b"add", "x": b"\x00\xff"})
    assert second.queue == queue
    assert dict(second.headers) == {}


def test_batch_of_500_is_fetched_in_batches_each_exactly_once(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    sent = [f"m{i}".encode() for i in range(500)]
    broker.publish([Message(queue, body) for body in sent])
    consumer = broker.consumer([queue])
    got = collect(consumer, 500, batch=64)
    counts = Counter(bodies(got))
    assert set(counts) == set(sent)
    assert max(counts.values()) == 1
    assert consumer.in_flight() == 0
    consumer.close()
    assert drain_to_marker(broker, queue) == []


def test_done_deliveries_are_never_redelivered(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    broker.publish([Message(queue, f"m{i}".encode()) for i in range(5)])
    consumer = broker.consumer([queue])
    got = collect(consumer, 5, done=False)
    assert len(got) == 5
    # done() may come from any thread, like a worker's pool thread.
    acker = threading.Thread(target=consumer.done, args=(got,))
    acker.start()
    acker.join(DEADLINE)
    assert consumer.in_flight() == 0
    consumer.close()
    assert drain_to_marker(broker, queue) == []


def test_deliveries_not_done_are_redelivered_after_close(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    sent = {f"m{i}".encode() for i in range(3)}
    broker.publish([Message(queue, body) for body in sent])
    first = broker.consumer([queue])
    taken = collect(first, 3, done=False)
    assert set(bodies(taken)) == sent
    assert first.in_flight() == 3
    first.close()
    second = broker.consumer([queue])
    again = collect(second, 3)
    second.close()
    assert sorted(bodies(again)) == sorted(sent)


def test_lease_runs_out_and_the_message_is_redelivered(
        broker_kind: str, broker_factory: Callable[..., Broker],
        queue_name: Callable[[str], str]) -> None:
    if broker_kind != "sqlite":
        pytest.skip("visibility timeouts are a SQLite broker feature")
    broker = broker_factory(visibility_timeout=0.5)
    queue = queue_name("q")
    broker.publish([Message(queue, b"lost")])
    dead_worker = broker.consumer([queue])  # takes the message, then never fetches again
    assert bodies(collect(dead_worker, 1, done=False)) == [b"lost"]
    survivor = broker.consumer([queue])
    assert survivor.fetch(10, 0.1) == []  # still leased
    started = time.monotonic()
    again = collect(survivor, 1)
    assert bodies(again) == [b"lost"]
    assert time.monotonic() - started < 5.0


def test_leases_are_renewed_while_the_consumer_fetches(
        broker_kind: str, broker_factory: Callable[..., Broker],
        queue_name: Callable[[str], str]) -> None:
    if broker_kind != "sqlite":
        pytest.skip("visibility timeouts are a SQLite broker feature")
    broker = broker_factory(visibility_timeout=0.6)
    queue = queue_name("q")
    broker.publish([Message(queue, b"long task")])
    owner = broker.consumer([queue])
    assert bodies(collect(owner, 1, done=False)) == [b"long task"]
    other = broker.consumer([queue])
    end = time.monotonic() + 2.0  # more than three visibility timeouts
    while time.monotonic() < end:
        assert owner.fetch(0, 0) == []  # a busy worker's loop: renews its leases
        assert other.fetch(10, 0.05) == []
    assert owner.in_flight() == 1
    owner.close()
    assert bodies(collect(other, 1)) == [b"long task"]


def test_two_consumers_in_threads_never_get_the_same_message(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    sent = {f"m{i}".encode() for i in range(500)}
    broker.publish([Message(queue, body) for body in sent])
    results: list[list[bytes]] = [[], []]
    lock = threading.Lock()
    start = threading.Barrier(2)
    end = time.monotonic() + DEADLINE

    def consume(index: int) -> None:
        consumer = broker.consumer([queue])
        start.wait()
        try:
            while time.monotonic() < end:
                with lock:
                    if len(results[0]) + len(results[1]) >= len(sent):
                        return
                fetched = consumer.fetch(16, 0.1)
                with lock:
                    results[index].extend(bodies(fetched))
                consumer.done(fetched)
        finally:
            consumer.close()

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 5)
    counts = Counter(results[0] + results[1])
    assert set(counts) == sent
    assert max(counts.values()) == 1


_CONSUMER_PROCESS = """
import json, sys, time
from yadtq.settings import load_settings
from yadtq.transports.base import create_broker
url, queue = sys.argv[1], sys.argv[2]
broker = create_broker(url, load_settings(broker=url, backend="memory://", environ={}))
consumer = broker.consumer([queue])
print("ready", flush=True)
sys.stdin.readline()
got = []
while True:
    fetched = consumer.fetch(20, 0.5)
    if not fetched:
        break
    got.extend(d.body.decode() for d in fetched)
    consumer.done(fetched)
    time.sleep(0.002)  # let the other process in between batches
consumer.close()
broker.close()
print(json.dumps(got), flush=True)
"""


def test_two_processes_never_get_the_same_message(
        broker_kind: str, broker: Broker, broker_url: str, queue_name: Callable[[str], str],
        python_process: Callable[..., subprocess.Popen[str]]) -> None:
    if broker_kind != "sqlite":
        pytest.skip("only the SQLite broker is shared by processes without a server")
    queue = queue_name("q")
    sent = {f"m{i}" for i in range(2000)}
    broker.publish([Message(queue, body.encode()) for body in sent])
    processes = [python_process(_CONSUMER_PROCESS, broker_url, queue) for _ in range(2)]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.communicate()[1]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    received: list[str] = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        received.extend(json.loads(out.strip().splitlines()[-1]))
    counts = Counter(received)
    assert set(counts) == sent
    assert max(counts.values()) == 1


def test_fetch_on_an_empty_queue_waits_about_the_timeout(
        broker_kind: str, broker: Broker, queue_name: Callable[[str], str]) -> None:
    consumer = broker.consumer([queue_name("empty")])
    started = time.monotonic()
    assert consumer.fetch(10, 0.5) == []
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 2.0
    if broker_kind != "kafka":  # a Kafka poll may return early on group events
        assert elapsed >= 0.4
    consumer.close()


def test_fetch_of_zero_items_returns_nothing_and_takes_nothing(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    broker.publish([Message(queue, b"keep")])
    consumer = broker.consumer([queue])
    assert consumer.fetch(0, 0.2) == []
    assert consumer.in_flight() == 0
    assert bodies(collect(consumer, 1)) == [b"keep"]
    consumer.close()


def test_dead_letter_removes_the_message_from_its_queue(
        broker_kind: str, broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    broker.publish([Message(queue, b"poison", key=b"k", headers={"yadtq-task": b"nope"}),
                    Message(queue, b"fine")])
    consumer = broker.consumer([queue])
    got = {d.body: d for d in collect(consumer, 2, done=False)}
    consumer.dead_letter(got[b"poison"], "task 'nope' is not registered")
    consumer.done([got[b"fine"]])
    assert consumer.in_flight() == 0
    consumer.close()
    assert drain_to_marker(broker, queue) == []
    if broker_kind in ("memory", "sqlite"):
        dead = broker.dead_letters()
        assert bodies(dead)[-1:] == [b"poison"]
        assert dead[-1].queue == queue
        assert dead[-1].key == b"k"
        assert dict(dead[-1].headers) == {"yadtq-task": b"nope"}


def test_dead_letters_lists_oldest_to_newest_and_keeps_the_last_limit(
        broker_kind: str, broker: Broker, queue_name: Callable[[str], str]) -> None:
    if broker_kind not in ("memory", "sqlite"):
        pytest.skip("dead_letters() is kept by the memory and SQLite brokers")
    queue = queue_name("q")
    broker.publish([Message(queue, f"d{i}".encode()) for i in range(5)])
    consumer = broker.consumer([queue])
    for delivery in sorted(collect(consumer, 5, done=False), key=lambda d: d.body):
        consumer.dead_letter(delivery, "bad")
    consumer.close()
    assert bodies(broker.dead_letters(limit=3)) == [b"d2", b"d3", b"d4"]


def test_purge_drops_waiting_messages(
        broker_kind: str, broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue, other = queue_name("q"), queue_name("other")
    broker.publish([Message(queue, f"m{i}".encode()) for i in range(3)] + [Message(other, b"o")])
    purged = broker.purge(queue)
    assert purged == 3 or (broker_kind == "kafka" and purged == -1)
    assert drain_to_marker(broker, queue) == []
    assert drain_to_marker(broker, other) == [b"o"]


def test_depth_counts_messages_not_done(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    queue = queue_name("q")
    if broker.depth(queue) is None:
        pytest.skip("this broker does not know its depth")
    broker.publish([Message(queue, f"m{i}".encode()) for i in range(5)])
    assert settled_depth(broker, queue, 5) == 5, "depth after publishing 5"
    consumer = broker.consumer([queue])
    got = collect(consumer, 5)
    assert sorted(bodies(got)) == [f"m{i}".encode() for i in range(5)]
    consumer.close()
    assert settled_depth(broker, queue, 0) == 0, "depth after the 5 were done and the consumer closed"


def settled_depth(broker: Broker, queue: str, expected: int) -> Optional[int]:
    """The queue's depth once it reads ``expected``, or its last reading after ``DEADLINE``."""
    end = time.monotonic() + DEADLINE
    depth = broker.depth(queue)
    while depth != expected and time.monotonic() < end:
        time.sleep(0.05)
        depth = broker.depth(queue)
    return depth


def test_a_consumer_gets_only_its_own_queues(
        broker: Broker, queue_name: Callable[[str], str]) -> None:
    a, b, c = queue_name("a"), queue_name("b"), queue_name("c")
    broker.publish([Message(a, b"a1"), Message(b, b"b1"), Message(c, b"c1"), Message(a, b"a2")])
    only_a = broker.consumer([a])
    got = collect(only_a, 2)
    only_a.close()
    assert sorted(bodies(got)) == [b"a1", b"a2"]
    assert {d.queue for d in got} == {a}
    assert drain_to_marker(broker, a) == []
    both = broker.consumer([b, c])
    got = collect(both, 2)
    both.close()
    assert {(d.queue, d.body) for d in got} == {(b, b"b1"), (c, b"c1")}


# --------------------------------------------------------------------------- sqlite specifics


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite://host/x.db"])
def test_sqlite_refuses_urls_it_cannot_share(url: str) -> None:
    with pytest.raises(ConfigurationError):
        create_broker(url, load_settings(broker=url, backend="memory://", environ={}))


def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yadtq.transports.sqlite import database_path

    monkeypatch.chdir(tmp_path)
    real = os.path.realpath
    assert database_path("sqlite:///rel/x.db") == real(tmp_path / "rel" / "x.db")
    assert database_path(f"sqlite:///{tmp_path}/abs.db") == real(tmp_path / "abs.db")
    assert database_path("sqlite:////var/abs.db") == real("/var/abs.db")


def test_peek_shows_the_oldest_waiting_message_without_taking_it(
        broker_kind: str, broker: Broker, queue_name: Callable[[str], str]) -> None:
    if broker_kind not in ("memory", "sqlite"):
        pytest.skip("peek() is kept by the memory and SQLite brokers")
    queue = queue_name("q")
    assert broker.peek(queue) is None
    broker.publish([Message(queue, b"first", key=b"k", headers={"yadtq-task": b"add"}),
                    Message(queue, b"second")])
    for _ in range(2):  # peeking takes nothing
        peeked = broker.peek(queue)
        assert peeked is not None
        assert (peeked.body, peeked.queue, peeked.key, dict(peeked.headers)) == (
            b"first", queue, b"k", {"yadtq-task": b"add"})
    consumer = broker.consumer([queue])
    assert bodies(collect(consumer, 1, batch=1, done=False)) == [b"first"]
    peeked = broker.peek(queue)
    assert peeked is not None and peeked.body == b"second"  # a leased message is not waiting
    consumer.close()
