"""A Redis record's ``history`` field read back as the entries written into it."""

from __future__ import annotations

import struct
from typing import Optional

import pytest

from yadtq.transports.redis.codec import decode_history, decode_record, history_entry

Entry = tuple[str, float, Optional[str]]

#: A timestamp whose packed bytes hold 0x93, the byte that starts every entry.
STAMP_WITH_HEADER_BYTE = struct.unpack(">d", b"\x41\xda\xc4\x81\x93\x00\x00\x00")[0]


def packed(entries: list[Entry]) -> bytes:
    return b"".join(history_entry(state, ts, worker) for state, ts, worker in entries)


@pytest.mark.parametrize("entries", [
    [],
    [("queued", 1796343797.8253756, None)],
    [("queued", 1.5, None), ("processing", 2.5, "vm.1"), ("success", 3.5, "vm.1")],
    [("queued", STAMP_WITH_HEADER_BYTE, None), ("success", 2.0, "vm.1")],
    [("processing", 2.0, "w\u0413\u0493")],  # a worker name whose UTF-8 holds 0x93
    [("retrying", float(n), f"w{n}") for n in range(40)],  # past a one-byte array header
], ids=["empty", "one", "finished", "stamp byte", "name byte", "forty"])
def test_history_reads_back_every_entry_in_order(entries: list[Entry]) -> None:
    blob = packed(entries)
    assert decode_history(blob) == tuple(entries)


def test_a_whole_number_stamp_reads_as_a_float() -> None:
    history = decode_history(history_entry("queued", 7, None) + history_entry("success", 8.5, None))
    assert history == (("queued", 7.0, None), ("success", 8.5, None))
    assert all(type(ts) is float for _, ts, _ in history)


def test_a_record_carries_its_decoded_history() -> None:
    entries: list[Entry] = [("queued", STAMP_WITH_HEADER_BYTE, None), ("success", 2.0, "vm.1")]
    record = decode_record("t1", {b"state": b"success", b"history": packed(entries)})
    assert record is not None
    assert record.history == tuple(entries)
    assert record.updated == 2.0
