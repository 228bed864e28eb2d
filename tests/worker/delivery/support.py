"""Helpers of the delivery cases: counted runs, a live other instance ("ghost") holding a
task, publishing an envelope, a consumer stand-in, and messages no worker can run."""

from __future__ import annotations

import threading
import time
from typing import Any

from yadtq import YADTQ
from yadtq.envelope import PROTOCOL_VERSION, Envelope, encode, pack
from yadtq.transports.base import RUN, Claim, Message, WorkerInfo

GHOST = "ghost#1"


class Runs:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Any] = []

    def hit(self, value: Any) -> None:
        with self.lock:
            self.calls.append(value)

    def count(self, value: Any) -> int:
        with self.lock:
            return self.calls.count(value)


def ghost_beat(app: YADTQ, age: float = 0.0) -> None:
    app.backend.heartbeat(WorkerInfo(worker="ghost", instance=GHOST, last_heartbeat=time.time() - age))


def held_by_ghost(app: YADTQ, envelope: Envelope) -> None:
    """The task is ``processing`` on a live other instance (e.g. the partition's old owner)."""
    ghost_beat(app)
    claim = Claim(envelope.id, envelope.task, envelope.queue, envelope.retries, GHOST, "ghost",
                  time.time())
    assert app.backend.claim([claim], time.time() - 60) == [RUN]


def publish(app: YADTQ, envelope: Envelope) -> None:
    app.broker.publish([Message(envelope.queue, encode(envelope), envelope.routing_key(),
                                envelope.headers())])


class Owning:
    """A consumer stand-in whose deliveries of generation 1 were revoked."""

    def __init__(self) -> None:
        self.done_calls: list[Any] = []

    def owns(self, delivery: Any) -> bool:
        return bool(delivery.token != 1)

    def done(self, deliveries: Any) -> None:
        self.done_calls.append(list(deliveries))


def _raw(body: dict[str, Any]) -> bytes:
    return pack(body)


def bad_messages(task: str) -> list[tuple[str, bytes]]:
    def body(**fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": "victim", "task": task, "args": [1]}
        out.update(fields)
        return out

    return [
        ("decimal", b"\x82\xa1v\x01\xa4args\x91\xd5\x04zz"),  # Decimal ext with text "zz"
        ("time_limit", _raw(body(options={"time_limit": "soon"}))),
        ("max_retries", _raw(body(options={"max_retries": "many"}))),
        ("queue", _raw(body(queue=5))),
        ("key", _raw(body(key=["k"]))),
        ("options", _raw(body(options=[1, 2]))),
        ("retries", _raw(body(retries="x"))),
        ("eta", _raw(body(eta="tomorrow"))),
        ("bad-utf8", b"\x83\xa1v\x01\xa2id\xa2ok\xa4task\xa3\xff\xfe\xfd"),
        ("version", _raw(body(v=True))),
    ]
