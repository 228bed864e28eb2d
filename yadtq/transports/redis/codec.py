"""How the Redis backend packs what it stores and reads it back (see ``__init__``)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import msgpack

from ...envelope import PACKER_BUFFER_BYTES, pack, unpack
from ...exceptions import SerializationError
from ..base import ErrorInfo, Message, ScheduledMessage, StateChange, TaskRecord, TaskSummary, WorkerInfo

logger = logging.getLogger(__name__)

WORKER_FIELDS = frozenset(f.name for f in dataclasses.fields(WorkerInfo))


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


_packers = threading.local()


def _packer(bin_type: bool) -> msgpack.Packer:
    """This thread's packer of that kind, made once: ``msgpack.packb`` makes one (and
    its buffer) per call, twice the cost of packing a history entry. Not thread-safe,
    hence one per thread."""
    try:
        return _packers.bin if bin_type else _packers.raw  # type: ignore[no-any-return]
    except AttributeError:
        _packers.bin = msgpack.Packer(use_bin_type=True, buf_size=PACKER_BUFFER_BYTES)
        _packers.raw = msgpack.Packer(use_bin_type=False, buf_size=PACKER_BUFFER_BYTES)
        return _packer(bin_type)


def packb(value: Any) -> bytes:
    return _packer(True).pack(value)  # type: ignore[no-any-return]  # resets itself on error


def history_entry(state: str, timestamp: float, worker: Optional[str]) -> bytes:
    return packb([state, timestamp, worker])


def pack_error(error: ErrorInfo) -> bytes:
    try:
        return pack([error.type, error.message, error.args, error.traceback])
    except SerializationError:
        logger.debug("error args of type %s cannot be stored; keeping the message", error.type)
        return pack([error.type, error.message, (error.message,), error.traceback])


def lua_batch(items: list[list[Any]]) -> bytes:
    """One script argument for a whole batch, decoded in Lua by ``cmsgpack.unpack``.

    Much cheaper for the client than one argument per field. Items hold only str,
    bytes and int: Redis's cmsgpack reads no bin type (hence ``use_bin_type=False``,
    bytes travel as raw strings) and Lua would round floats, so those go as text.
    """
    return _packer(False).pack(items)  # type: ignore[no-any-return]


def float_text(value: float) -> str:
    return repr(float(value))


def change_fields(change: StateChange) -> list[Any]:
    """Field/value pairs a change sets besides ``state`` and ``history`` (``None``: keep)."""
    fields: list[Any] = []
    for name in ("name", "queue", "result", "worker"):
        value = getattr(change, name)
        if value is not None:
            fields += [name, value]
    if change.retries is not None:
        fields += ["retries", str(int(change.retries))]
    if change.eta is not None:
        fields += ["eta", float_text(change.eta)]
    if change.error is not None:
        fields += ["error", pack_error(change.error)]
    return fields


def text(fields: Mapping[bytes, bytes], name: bytes) -> Optional[str]:
    value = fields.get(name)
    return None if value is None else value.decode()


def decode_record(task_id: str, fields: Mapping[bytes, bytes]) -> Optional[TaskRecord]:
    state = fields.get(b"state")
    if state is None:
        return None
    error = None
    if b"error" in fields:
        type_name, message, args, traceback = unpack(fields[b"error"])
        error = ErrorInfo(type_name, message, args, traceback)
    eta = fields.get(b"eta")
    return TaskRecord(
        task_id=task_id,
        state=state.decode(),
        name=text(fields, b"name"),
        queue=text(fields, b"queue"),
        result=fields.get(b"result"),
        error=error,
        retries=int(fields.get(b"retries", b"0")),
        worker=text(fields, b"worker"),
        eta=None if eta is None else float(eta),
        instance=text(fields, b"instance"),
        history=decode_history(fields.get(b"history", b"")),
    )


#: The first byte of a history entry: msgpack's header of a three-item array.
_ENTRY_HEADER = 0x93


def decode_history(blob: bytes) -> tuple[tuple[str, float, Optional[str]], ...]:
    """A record's ``history`` field: :func:`history_entry` packings, one after another.

    Read as one array whose length is counted beforehand, in one ``unpackb``: a
    streaming ``Unpacker`` costs three times as much for the three entries of a
    finished task (2026-12-04: 3.0 us against 0.9 us), a fifth of what a client
    spends on each result it reads. The count is the number of bytes equal to an
    entry's header, which is every entry's first byte and may also be a byte inside
    one (a timestamp's, a worker name's): counted too many (or, for a field written
    otherwise, too few), the parse cannot end exactly at the last byte and raises,
    and the entries are read one by one instead.
    """
    if not blob:
        return ()
    count = blob.count(_ENTRY_HEADER)
    try:
        header = _packer(True).pack_array_header(count)
        entries = msgpack.unpackb(header + blob, raw=False, use_list=False)
    except ValueError:  # msgpack's ExtraData and OutOfData among them
        unpacker = msgpack.Unpacker(raw=False, use_list=False, max_buffer_size=len(blob))
        unpacker.feed(blob)
        entries = tuple(unpacker)
    for _, timestamp, _ in entries:
        if type(timestamp) is not float:  # an int stamp reads as a float
            return tuple((state, float(ts), worker) for state, ts, worker in entries)
    return entries  # type: ignore[no-any-return]


def schedule_member(entry: ScheduledMessage) -> bytes:
    """The schedule's member for an entry: it carries everything, so a leased one is rebuilt."""
    m = entry.message
    return packb([entry.task_id, float(entry.due), m.queue, m.body, m.key, dict(m.headers)])


def decode_member(member: bytes) -> ScheduledMessage:
    task_id, due, queue, body, key, headers = msgpack.unpackb(member, raw=False)
    return ScheduledMessage(task_id, due, Message(queue, body, key, headers))


def optional(raw: bytes) -> Optional[str]:
    return raw.decode(errors="replace") if raw else None


def indexed_summary(row: Sequence[bytes]) -> TaskSummary:
    """A row of ``snapshot.lua``'s index listing: ``[id, since, name, worker, queue]``."""
    task_id, since, name, worker, queue = row
    return TaskSummary(task_id=task_id.decode(), name=optional(name), worker=optional(worker),
                       queue=optional(queue), timestamp=float(since))


def finished_summary(raw: bytes) -> TaskSummary:
    """An entry of a recent list (``record.lua``): ``[id, name, worker, queue, finished,
    started, error type, error message]``, as Lua's cmsgpack packs strings."""
    task_id, name, worker, queue, finished, started, error_type, message = msgpack.unpackb(raw, raw=True)
    return TaskSummary(
        task_id=task_id.decode(), name=optional(name), worker=optional(worker),
        queue=optional(queue), timestamp=float(finished),
        runtime=max(0.0, float(finished) - float(started)) if started else None,
        error_type=optional(error_type),
        error_message=message.decode(errors="replace") if error_type else None,
    )


def decode_worker(raw: bytes) -> WorkerInfo:
    data = {k: v for k, v in unpack(raw).items() if k in WORKER_FIELDS}
    data["queues"] = tuple(data.get("queues", ()))
    return WorkerInfo(**data)


def schedule_member_parts(entry: ScheduledMessage) -> tuple[bytes, bytes]:
    """The schedule member of ``entry`` without its due: (head, tail), such that
    ``head + struct.pack('>d', due) + tail`` is ``schedule_member`` of the entry due then
    (``rate.lua`` builds the member of a waiting task around the due it computes)."""
    head = b"\x96" + packb(entry.task_id) + b"\xcb"
    member = schedule_member(dataclasses.replace(entry, due=0.0))
    if not member.startswith(head):  # pragma: no cover - msgpack packs doubles as 0xcb
        raise ValueError("unexpected msgpack layout of a schedule member")
    return head, member[len(head) + 8:]
