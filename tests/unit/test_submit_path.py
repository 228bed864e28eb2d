"""The fast submit path builds exactly the message the Envelope-based encoder builds."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from yadtq import YADTQ
from yadtq.envelope import (
    Envelope,
    body_of,
    decode,
    encode,
    encode_body,
    headers_for,
    new_body,
    pack,
    unpack,
)
from yadtq.exceptions import SerializationError
from yadtq.task_ids import new_task_id

pytestmark = pytest.mark.timeout(30)


def test_new_task_id_is_a_uuid7_hex_stamped_with_its_millisecond() -> None:
    before = int(time.time() * 1000)
    ids = [new_task_id() for _ in range(2000)]
    after = int(time.time() * 1000)
    assert len(set(ids)) == 2000
    for task_id in ids[:200]:
        parsed = uuid.UUID(hex=task_id)
        assert parsed.hex == task_id and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert all(before <= int(task_id[:12], 16) <= after for task_id in ids)
    time.sleep(0.002)
    later = new_task_id()
    assert later > max(ids)  # a later millisecond sorts after every id of an earlier one


def test_new_body_encodes_like_the_envelope() -> None:
    args = (1, (2, 3), {4, 5})
    kwargs = {"k": [1, "x"]}
    envelope = Envelope(id="abc", task="t.add", args=args, kwargs=kwargs, queue="q", eta=5.0,
                        expires=9.0, key="k1", created=1.5, options={"max_retries": 2})
    fields = new_body("abc", "t.add", args, kwargs, "q", 5.0, 9.0, "k1", 1.5, {"max_retries": 2})
    assert fields == body_of(envelope)
    for secret in (None, "s3cret"):
        assert encode_body(fields, secret) == encode(envelope, secret)
        assert decode(encode_body(fields, secret), secret) == envelope
    assert headers_for("t.add", "abc") == envelope.headers()


def test_reused_packer_survives_errors_and_threads() -> None:
    with pytest.raises(SerializationError):
        pack({"a": object()})
    assert unpack(pack({"a": (1, 2)})) == {"a": (1, 2)}  # nothing left over from the failure
    out: list[bool] = []

    def work(n: int) -> None:
        out.append(all(unpack(pack([n, i, (n, i)])) == [n, i, (n, i)] for i in range(2000)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [True] * 4


def test_delay_sends_one_decodable_message() -> None:
    app = YADTQ("submit", broker="memory://", backend="memory://", default_queue="fast")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    sent: list[object] = []
    app.broker.publish = sent.extend  # type: ignore[method-assign,assignment]
    result = add.apply_async((2, 3), key="k", max_retries=1)
    assert len(sent) == 1
    message = sent[0]
    envelope = decode(message.body)  # type: ignore[attr-defined]
    assert (envelope.id, envelope.task, envelope.args, envelope.queue, envelope.key) == (
        result.id, "t.add", (2, 3), "fast", "k")
    assert envelope.options == {"max_retries": 1}
    assert message.key == b"k" and message.headers == headers_for("t.add", result.id)  # type: ignore[attr-defined]


def test_a_forked_child_builds_its_own_kafka_clients() -> None:
    """The Kafka broker's fork check (a counter bumped at fork, not ``getpid()`` per send):
    a child drops the parent's clients, the parent keeps them."""
    import os

    from yadtq.settings import load_settings
    from yadtq.transports.kafka import KafkaBroker

    broker = KafkaBroker("kafka://127.0.0.1:9", load_settings(broker="kafka://127.0.0.1:9",
                                                               backend="memory://"))
    parents = object()
    broker._producer = parents
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it would publish with, then leave without cleanup
        broker._check_fork()
        os.write(write, b"dropped" if broker._producer is None else b"kept")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64)
    os.close(read)
    broker._check_fork()
    assert child == b"dropped" and broker._producer is parents
    broker._producer = None
