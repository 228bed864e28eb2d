"""The wire format: a versioned msgpack envelope, extension types and HMAC signing.

No pickle anywhere: a message can only carry msgpack types plus the extension
types below, so decoding a message never runs code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import struct
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import msgpack

from .exceptions import ProtocolError, SerializationError
from .priority import HEADER_PRIORITY, header_value, valid_priority

PROTOCOL_VERSION = 1

#: msgpack extension type codes (see docs/protocol.md).
EXT_DATETIME = 1  # ISO 8601 text, UTF-8
EXT_DATE = 2  # ISO 8601 text, UTF-8
EXT_UUID = 3  # 16 raw bytes
EXT_DECIMAL = 4  # decimal text, UTF-8
EXT_TUPLE = 5  # a msgpack array
EXT_SET = 6  # a msgpack array
EXT_TIME = 7  # ISO 8601 text, UTF-8

#: Header names carried beside the body (Kafka headers; stored with the row elsewhere).
HEADER_TASK = "yadtq-task"
HEADER_VERSION = "yadtq-version"
HEADER_ID = "yadtq-id"


def _default(obj: Any) -> Any:
    # Nested values go through _pack_nested: the thread's packer is mid-way through
    # the outer value while this runs.
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _pack_nested(list(obj)))
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(EXT_DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, dt.time):
        return msgpack.ExtType(EXT_TIME, obj.isoformat().encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(EXT_UUID, obj.bytes)
    # A Decimal exists only once its module is loaded: this check never loads it.
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, (set, frozenset)):
        return msgpack.ExtType(EXT_SET, _pack_nested(list(obj)))
    # strict_types sends subclasses here: carry them as their plain base type.
    for base in (bool, int, float, str, bytes, list, dict):
        if isinstance(obj, base):
            return base(obj)  # type: ignore[arg-type]
    raise TypeError(f"cannot serialize {type(obj).__name__!r} object")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_TUPLE:
        return tuple(unpack(data))
    if code == EXT_DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == EXT_DATE:
        return dt.date.fromisoformat(data.decode())
    if code == EXT_TIME:
        return dt.time.fromisoformat(data.decode())
    if code == EXT_UUID:
        return uuid.UUID(bytes=data)
    if code == EXT_DECIMAL:
        from decimal import Decimal  # not loaded by every worker for the rare message that needs it

        return Decimal(data.decode())
    if code == EXT_SET:
        return set(unpack(data))
    return msgpack.ExtType(code, data)


_local = threading.local()
#: Starting size of a packer's buffer, which grows to the largest value it has packed.
#: msgpack's default, 256 KiB, is held by every thread that packs (each worker thread
#: keeps a packer of each kind): 6 MB of an idle worker's memory for messages of a few
#: hundred bytes.
PACKER_BUFFER_BYTES = 4096


def _packer() -> msgpack.Packer:
    """This thread's packer: made once, reused for every value (a packer is not thread-safe)."""
    try:
        return _local.packer  # type: ignore[no-any-return]
    except AttributeError:
        _local.packer = msgpack.Packer(default=_default, use_bin_type=True, strict_types=True,
                                       buf_size=PACKER_BUFFER_BYTES)
        return _local.packer  # type: ignore[no-any-return]


def _pack_nested(value: Any) -> bytes:
    return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]


def pack(value: Any) -> bytes:
    """Encode a value with yadtq's msgpack extension types.

    Raises:
        SerializationError: the value (or something inside it) cannot be carried.
    """
    try:
        return _packer().pack(value)  # type: ignore[no-any-return]  # resets itself on error
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(str(exc)) from None


def unpack(data: bytes) -> Any:
    """Decode bytes written by :func:`pack`.

    Raises:
        ProtocolError: the bytes are not valid msgpack.
    """
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except RecursionError:
        raise ProtocolError("undecodable message: nested too deeply") from None
    except Exception as exc:  # hostile bytes: any failure of msgpack or of an ext hook
        # (a Decimal extension with bad text raises decimal.InvalidOperation, not ValueError).
        raise ProtocolError(f"undecodable message: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Envelope:
    """A task invocation as it travels: what to run, with what, and under which limits."""

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    retries: int = 0
    #: Epoch seconds before which the task must not run.
    eta: Optional[float] = None
    #: Epoch seconds after which the task is revoked instead of run.
    expires: Optional[float] = None
    parent_id: Optional[str] = None
    root_id: Optional[str] = None
    #: Routing key (Kafka message key); ``None`` means the task id.
    key: Optional[str] = None
    #: Epoch seconds when the task was first submitted.
    created: float = 0.0
    #: Per-call options (e.g. ``time_limit``, ``max_retries``).
    options: dict[str, Any] = field(default_factory=dict)
    #: What a canvas does after this task (``yadtq.canvas.steps``): the rest of its
    #: chain, ``link``/``link_error`` callbacks, chord membership. Empty for plain tasks
    #: and then left out of the message.
    canvas: dict[str, Any] = field(default_factory=dict)

    def next_attempt(self, eta: float) -> Envelope:
        """The envelope of this task's next attempt, due at ``eta``."""
        return replace(self, retries=self.retries + 1, eta=eta)

    def headers(self) -> dict[str, bytes]:
        """Headers that let a broker route the message without decoding it."""
        return headers_for(self.task, self.id, self.options.get("priority"))

    def routing_key(self) -> bytes:
        return (self.key or self.id).encode()


#: The value of the ``yadtq-version`` header.
VERSION_HEADER = str(PROTOCOL_VERSION).encode()


def headers_for(task: str, task_id: str, priority: Optional[int] = None) -> dict[str, bytes]:
    """The headers of a message carrying task ``task_id`` of ``task`` (with ``yadtq-priority``
    for a non-default ``priority``)."""
    headers = {HEADER_TASK: task.encode(), HEADER_VERSION: VERSION_HEADER, HEADER_ID: task_id.encode()}
    level = header_value(priority)
    if level is not None:
        headers[HEADER_PRIORITY] = level
    return headers


def body_of(envelope: Envelope) -> dict[str, Any]:
    """The msgpack map an envelope travels as (before signing)."""
    e = envelope
    body = {"v": PROTOCOL_VERSION, "id": e.id, "task": e.task, "args": list(e.args), "kwargs": e.kwargs,
            "queue": e.queue, "retries": e.retries, "eta": e.eta, "expires": e.expires,
            "parent_id": e.parent_id, "root_id": e.root_id, "key": e.key, "created": e.created,
            "options": e.options}
    if e.canvas:  # added compatibly (no version change): older decoders ignore it
        body["canvas"] = e.canvas
    return body


def new_body(task_id: str, task: str, args: tuple[Any, ...], kwargs: dict[str, Any], queue: str,
             eta: Optional[float], expires: Optional[float], key: Optional[str], created: float,
             options: dict[str, Any]) -> dict[str, Any]:
    """The body of a first attempt, built without an :class:`Envelope` (the submit path);
    the same map :func:`body_of` gives for the equal envelope."""
    return {"v": PROTOCOL_VERSION, "id": task_id, "task": task, "args": list(args), "kwargs": kwargs,
            "queue": queue, "retries": 0, "eta": eta, "expires": expires, "parent_id": None,
            "root_id": None, "key": key, "created": created, "options": options}


#: msgpack's encoding of a 32-character string (a task id from :func:`new_task_id`): str 8.
_STR32 = b"\xd9\x20"
#: msgpack's encoding of a float (64-bit, as the packer writes every Python float).
_FLOAT64 = b"\xcb"
_pack_double = struct.Struct(">d").pack


class PlainEncoder:
    """Encodes first attempts of one task to one queue without options (``.delay()`` and
    bulk sends): the bytes :func:`encode_body` gives for their :func:`new_body`, with the
    fields they share packed once, made once per task and kept."""

    def __init__(self, task: str, queue: str, parent_id: Optional[str] = None,
                 root_id: Optional[str] = None) -> None:
        p = _packer().pack
        self._head = bytes([0x80 | 14]) + p("v") + p(PROTOCOL_VERSION) + p("id")
        self._task = p("task") + p(task) + p("args")
        self._kwargs = p("kwargs")
        shared: tuple[Any, ...] = (
            "queue", queue, "retries", 0, "eta", None, "expires", None, "parent_id", parent_id,
            "root_id", root_id, "key", None, "created")
        self._shared = b"".join(p(v) for v in shared)
        self._options = p("options") + p({})

    def encode_at(self, task_id: bytes, args: tuple[Any, ...], kwargs: dict[str, Any],
                  created: float) -> bytes:
        """The unsigned message of one task; ``task_id`` as ASCII bytes.

        Raises:
            SerializationError: an argument cannot be carried.
        """
        return b"".join((
            self._head, _STR32 + task_id if len(task_id) == 32 else pack(task_id.decode()),
            self._task, pack(list(args)) if args else b"\x90", self._kwargs,
            pack(kwargs) if kwargs else b"\x80", self._shared, _FLOAT64,
            _pack_double(created), self._options))


class PlainBodies(PlainEncoder):
    """:class:`PlainEncoder` for tasks submitted at one time (a bulk send, a group's
    members: those have the group as parent and root)."""

    def __init__(self, task: str, queue: str, created: float, parent_id: Optional[str] = None,
                 root_id: Optional[str] = None) -> None:
        super().__init__(task, queue, parent_id, root_id)
        self.created = float(created)

    def encode(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The unsigned message of one task.

        Raises:
            SerializationError: an argument cannot be carried.
        """
        return self.encode_at(task_id.encode(), args, kwargs, self.created)


def encode(envelope: Envelope, secret_key: Optional[str] = None) -> bytes:
    """Encode an envelope to the bytes a broker carries, signed when a key is given.

    Raises:
        SerializationError: an argument cannot be carried by the wire format.
    """
    return encode_body(body_of(envelope), secret_key)


def encode_body(body: dict[str, Any], secret_key: Optional[str] = None) -> bytes:
    """Encode a body from :func:`body_of` or :func:`new_body`, signed when a key is given.

    Raises:
        SerializationError: an argument cannot be carried by the wire format.
    """
    payload = pack(body)
    if secret_key is None:
        return payload
    digest = hmac.new(secret_key.encode(), payload, hashlib.sha256).digest()
    return pack({"v": PROTOCOL_VERSION, "signed": payload, "hmac": digest})


def decode(data: bytes, secret_key: Optional[str] = None) -> Envelope:
    """Decode, verify (when a key is given) and validate a message.

    Raises:
        ProtocolError: the message is malformed, of an unknown version, unsigned
            while a key is set, its signature does not match, or a field has the
            wrong type or value.
    """
    return from_body(verify(data, secret_key))


def verify(data: bytes, secret_key: Optional[str] = None) -> dict[str, Any]:
    """The body map of a message, its signature checked when a key is given; not validated.

    Raises:
        ProtocolError: undecodable, unsigned while a key is set, or forged.
    """
    body = unpack(data)
    if not isinstance(body, dict):
        raise ProtocolError("message is not a msgpack map")
    if "signed" in body:
        payload = body.get("signed")
        digest = body.get("hmac")
        if not isinstance(payload, bytes) or not isinstance(digest, bytes):
            raise ProtocolError("malformed signed message")
        if secret_key is not None:
            expected = hmac.new(secret_key.encode(), payload, hashlib.sha256).digest()
            if not hmac.compare_digest(expected, digest):
                raise ProtocolError("message signature does not match")
        body = unpack(payload)
        if not isinstance(body, dict):
            raise ProtocolError("signed payload is not a msgpack map")
    elif secret_key is not None:
        raise ProtocolError("unsigned message rejected (secret_key is set)")
    return body


#: Options a worker acts on, each with a check of its value (other keys are carried as they are).
def _valid_max_retries(value: Any) -> bool:
    return value is None or (_is_int(value) and value >= 0)


def _valid_time_limit(value: Any) -> bool:
    return value is None or (_is_number(value) and value >= 0)


_OPTION_CHECKS: dict[str, Callable[[Any], bool]] = {
    "max_retries": _valid_max_retries,
    "time_limit": _valid_time_limit,
    "priority": valid_priority,
}


def from_body(body: Mapping[str, Any]) -> Envelope:
    """Validate a decoded body map fully and build its envelope, so that nothing a
    worker does later (scheduling, the pool, retries) can fail on a field's type.

    Raises:
        ProtocolError: naming the first field that is missing or wrong.
    """
    get = body.get
    version = get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(f"unsupported protocol version {version!r}")
    task_id, name = get("id"), get("task")
    if not isinstance(task_id, str) or not task_id:
        raise ProtocolError("message has no task id")
    if not isinstance(name, str) or not name:
        raise ProtocolError("message has no task name")
    args = get("args", [])
    kwargs = get("kwargs") or {}
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise ProtocolError("args must be an array and kwargs a map")
    # What most messages leave empty is looked into only when it is not (a worker
    # validates every message it runs: this is on its path for each task).
    if kwargs and not all(isinstance(k, str) for k in kwargs):
        raise ProtocolError("kwargs keys must be strings")
    options = get("options") or {}
    if not isinstance(options, dict) or (options and not all(isinstance(k, str) for k in options)):
        raise ProtocolError("options must be a map with string keys")
    if options:
        for option, valid in _OPTION_CHECKS.items():
            if not valid(options.get(option)):
                raise ProtocolError(f"malformed option {option}: {options[option]!r:.80}")
    canvas = get("canvas") or {}
    if not isinstance(canvas, dict) or (canvas and not all(isinstance(k, str) for k in canvas)):
        raise ProtocolError("canvas must be a map with string keys")
    retries = get("retries") or 0
    if retries and (not _is_int(retries) or retries < 0):
        raise ProtocolError(f"malformed field retries: {retries!r:.80}")
    queue, parent_id, root_id, key = get("queue"), get("parent_id"), get("root_id"), get("key")
    if not ((queue is None or isinstance(queue, str)) and (parent_id is None or isinstance(parent_id, str))
            and (root_id is None or isinstance(root_id, str)) and (key is None or isinstance(key, str))):
        for which in ("queue", "parent_id", "root_id", "key"):
            _opt_str(body, which)  # raises, naming the first that is wrong
    eta, expires, created = get("eta"), get("expires"), get("created")
    return _envelope({
        "id": task_id,
        "task": name,
        "args": tuple(args),
        "kwargs": kwargs,
        "queue": queue or "default",
        "retries": retries,
        "eta": None if eta is None else _seconds("eta", eta),
        "expires": None if expires is None else _seconds("expires", expires),
        "parent_id": parent_id,
        "root_id": root_id,
        "key": key,
        "created": 0.0 if created is None else _seconds("created", created) or 0.0,
        "options": dict(options),
        "canvas": canvas,
    })


def _envelope(fields: dict[str, Any]) -> Envelope:
    """An envelope of every field, already checked: its ``__dict__`` filled at once. A
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    1.4 us for an envelope against 0.2, on the path of every task a worker runs (the
    keys are every field of :class:`Envelope`: ``test_envelope.py`` checks it)."""
    envelope = object.__new__(Envelope)
    envelope.__dict__.update(fields)
    return envelope


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _opt_str(body: Mapping[str, Any], name: str) -> Optional[str]:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"malformed field {name}: expected a string, got {type(value).__name__}")
    return value


def _seconds(name: str, value: Any) -> float:
    """A time field's value (epoch seconds), checked."""
    if not _is_number(value):
        raise ProtocolError(f"malformed field {name}: expected epoch seconds, got {value!r:.80}")
    return float(value)


def _peek(data: bytes, name: str) -> Any:
    """Best-effort field of a message's body, unverified (``None`` if unreadable)."""
    try:
        body = unpack(data)
        if isinstance(body, dict) and "signed" in body and isinstance(body["signed"], bytes):
            body = unpack(body["signed"])
        return body.get(name) if isinstance(body, dict) else None
    except Exception:
        return None


def peek_task_id(data: bytes) -> Optional[str]:
    """Best-effort task id of a message that failed to decode, for recording its failure."""
    task_id = _peek(data, "id")
    return task_id if isinstance(task_id, str) and task_id else None


def peek_created(data: bytes) -> Optional[float]:
    """Best-effort submit time of a message, unverified (for the monitor's queue ages)."""
    created = _peek(data, "created")
    if isinstance(created, bool) or not isinstance(created, (int, float)) or created <= 0:
        return None
    return float(created)
