from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import uuid

import msgpack
import pytest

from yadtq.envelope import (
    HEADER_TASK,
    HEADER_VERSION,
    PROTOCOL_VERSION,
    Envelope,
    decode,
    encode,
    from_body,
    pack,
    peek_task_id,
    unpack,
)
from yadtq.exceptions import ProtocolError, SerializationError

VALUES = [
    1, -2**63, 2**64 - 1, 1.5, "text", b"\x00\xff", None, True, [1, [2]], {"a": {"b": 1}},
    (1, (2, 3)), dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
    dt.datetime(2026, 1, 2, 3, 4, 5), dt.date(2026, 1, 2), dt.time(12, 30),
    uuid.UUID("12345678-1234-5678-1234-567812345678"), decimal.Decimal("3.14159"), {1, 2},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_with_their_types(value: object) -> None:
    back = unpack(pack(value))
    assert back == value
    assert type(back) is type(value)


def test_envelope_round_trip() -> None:
    env = Envelope(id="abc", task="math.add", args=(1, (2, 3)), kwargs={"k": dt.date(2026, 1, 1)},
                   queue="q", retries=2, eta=10.5, expires=20.0, parent_id="p", root_id="r",
                   key="k1", created=1.0, options={"time_limit": 3})
    assert decode(encode(env)) == env


def test_body_is_a_plain_msgpack_map() -> None:
    body = msgpack.unpackb(encode(Envelope(id="abc", task="add", args=(2, 3))), raw=False)
    assert body["v"] == PROTOCOL_VERSION
    assert body["id"] == "abc" and body["task"] == "add" and body["args"] == [2, 3]


def test_headers_name_task_and_version() -> None:
    headers = Envelope(id="abc", task="add").headers()
    assert headers[HEADER_TASK] == b"add"
    assert headers[HEADER_VERSION] == str(PROTOCOL_VERSION).encode()


@pytest.mark.parametrize("value", [object(), lambda: 1, 2**70, {(1, 2): 3}.keys()])
def test_unencodable_values_raise_serialization_error(value: object) -> None:
    with pytest.raises(SerializationError):
        encode(Envelope(id="a", task="t", args=(value,)))


def test_signed_message_verifies() -> None:
    env = Envelope(id="a", task="t", args=(1,))
    assert decode(encode(env, "secret"), "secret") == env


def test_unsigned_message_rejected_when_key_set() -> None:
    with pytest.raises(ProtocolError, match="unsigned"):
        decode(encode(Envelope(id="a", task="t")), "secret")


def test_forged_message_rejected() -> None:
    with pytest.raises(ProtocolError, match="signature"):
        decode(encode(Envelope(id="a", task="t"), "other-key"), "secret")


def test_tampered_payload_rejected() -> None:
    signed = unpack(encode(Envelope(id="a", task="t", args=(1,)), "secret"))
    payload = unpack(signed["signed"])
    payload["args"] = [666]
    signed["signed"] = pack(payload)
    with pytest.raises(ProtocolError, match="signature"):
        decode(pack(signed), "secret")


@pytest.mark.parametrize("data", [b"", b"\xc1garbage", pack([1, 2]), pack({"v": 99, "id": "a", "task": "t"}),
                                  pack({"v": PROTOCOL_VERSION, "task": "t"}),
                                  pack({"v": PROTOCOL_VERSION, "id": "a", "task": "t", "args": 5})])
def test_malformed_messages_raise_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(data)


def test_a_decoded_envelope_has_every_field_and_equals_one_built_whole() -> None:
    env = Envelope(id="abc", task="math.add", args=(1,), kwargs={"k": 1}, queue="q", retries=2,
                   eta=10.5, expires=20.0, parent_id="p", root_id="r", key="k1", created=1.0,
                   options={"time_limit": 3}, canvas={"chain": []})
    back = decode(encode(env))
    assert set(vars(back)) == {f.name for f in dataclasses.fields(Envelope)}
    assert back == env
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.retries = 3  # type: ignore[misc]
    minimal = from_body({"v": PROTOCOL_VERSION, "id": "a", "task": "t"})
    assert minimal == Envelope(id="a", task="t")


GOOD = {"v": PROTOCOL_VERSION, "id": "a", "task": "t"}


@pytest.mark.parametrize(("field", "value", "named"), [
    ("kwargs", {1: 2}, "kwargs keys"), ("options", {1: 2}, "options"), ("options", [1], "options"),
    ("options", {"max_retries": -1}, "max_retries"), ("options", {"priority": 10}, "priority"),
    ("options", {"time_limit": "1"}, "time_limit"), ("canvas", [1], "canvas"),
    ("canvas", {1: 2}, "canvas"), ("retries", -1, "retries"), ("retries", 1.5, "retries"),
    ("retries", True, "retries"), ("queue", 5, "queue"), ("parent_id", b"p", "parent_id"),
    ("root_id", 1, "root_id"), ("key", [], "key"), ("eta", "soon", "eta"),
    ("expires", math.inf, "expires"), ("created", True, "created"), ("args", 5, "args"),
])
def test_each_malformed_field_is_named(field: str, value: object, named: str) -> None:
    with pytest.raises(ProtocolError, match=named):
        from_body({**GOOD, field: value})


def test_peek_task_id_reads_ids_of_undecodable_messages() -> None:
    assert peek_task_id(pack({"v": 99, "id": "abc", "task": "t"})) == "abc"
    assert peek_task_id(b"\xc1") is None
