"""Sending tasks from a client: one task (``.delay()``) or many at once (``app.send_many``).

Both take the same two steps. :func:`prepare` builds and encodes one task's message
(it raises ``SerializationError`` before anything is sent); :func:`send` hands a
batch of prepared tasks over: dedupe keys claimed, the scheduled ones (countdown,
eta) stored in the backend in one call, the due ones published in one broker call
(Kafka: queued in librdkafka without a flush; SQLite: one transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional, Union

from . import states
from .config import route as route_of
from .envelope import (
    HEADER_ID,
    HEADER_TASK,
    HEADER_VERSION,
    VERSION_HEADER,
    Envelope,
    PlainEncoder,
    encode_body,
    headers_for,
    new_body,
    pack,
)
from .exceptions import ConfigurationError, YADTQError
from .priority import check_priority
from .result import AsyncResult
from .task_ids import new_task_id
from .transports.base import Message, ScheduledMessage, StateChange

if TYPE_CHECKING:
    from .app import YADTQ
    from .task import Task

logger = logging.getLogger(__name__)

#: The options of one call in :func:`send_many` (those of ``apply_async`` a plain send takes).
CALL_OPTIONS = frozenset({"countdown", "eta", "expires", "task_id", "queue", "key", "dedupe_key",
                          "max_retries", "time_limit", "priority"})


@dataclass
class Outgoing:
    """One task, encoded and ready to send."""

    task_id: str
    message: Message
    #: When it may run (backend clock), if later than now: it goes to the schedule.
    run_at: Optional[float]
    dedupe_key: Optional[str]
    #: The message's body map (for an eager run).
    fields: dict[str, Any]


def epoch(value: Union[datetime, float]) -> float:
    """Epoch seconds of a datetime or a number."""
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def prepare(app: YADTQ, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], now: float, *,
            task: Optional[Task[Any, Any]] = None,
            countdown: Optional[float] = None,
            eta: Optional[Union[datetime, float]] = None,
            expires: Optional[Union[datetime, float]] = None,
            task_id: Optional[str] = None,
            queue: Optional[str] = None,
            key: Optional[str] = None,
            dedupe_key: Optional[str] = None,
            max_retries: Optional[int] = None,
            time_limit: Optional[float] = None,
            priority: Optional[int] = None) -> Outgoing:
    """Build and encode one task's message (one dict, one encode).

    Raises:
        SerializationError: an argument cannot be carried.
        ConfigurationError: ``priority`` is not an integer from 0 to 9.
    """
    opts = task.options if task is not None else None
    if expires is None and opts is not None and opts.expires is not None:
        expires = opts.expires
    run_at = epoch(eta) if eta is not None else (now + countdown if countdown else None)
    extra: dict[str, Any] = {}
    if max_retries is not None:
        extra["max_retries"] = max_retries
    if time_limit is not None:
        extra["time_limit"] = time_limit
    level = (check_priority(priority, f"sending {name}") if priority is not None
             else opts.priority if opts is not None else 0)
    if level:  # the default level travels as no option and no header
        extra["priority"] = level
    tid = task_id or new_task_id()
    settings = app.settings
    to = (queue or (opts.queue if opts and opts.queue else None)
          or route_of(settings.task_routes, name) or settings.default_queue)
    added = app.send_hook(tid, to, extra) if app.send_hook is not None else None
    fields = new_body(tid, name, args, kwargs, to, run_at,
                      (epoch(expires) if isinstance(expires, datetime) else now + expires)
                      if expires is not None else None, key, now, extra)
    body = encode_body(fields, settings.secret_key)  # raises SerializationError
    if dedupe_key is None and opts is not None and opts.dedupe:
        dedupe_key = f"{name}:{pack([list(args), kwargs]).hex()}"
    headers = headers_for(name, tid, level)
    if added:
        headers.update(added)
    message = Message(queue=to, body=body, key=(key or tid).encode(), headers=headers)
    return Outgoing(tid, message, run_at if run_at is not None and run_at > now else None,
                    dedupe_key, fields)


def send_one(app: YADTQ, item: Outgoing, now: float) -> AsyncResult[Any]:
    """:func:`send` for one task; a task due now without a dedupe key goes straight to
    one non-blocking publish (the path of ``.delay()``)."""
    if item.dedupe_key is None and item.run_at is None and not app.settings.eager:
        app.broker.publish((item.message,))
        app.deliveries.sent()
        return _tracked(app, item.task_id)
    return send(app, (item,), now)[0]


def send(app: YADTQ, items: Sequence[Outgoing], now: float,
         plain: Sequence[Message] = ()) -> list[AsyncResult[Any]]:
    """Send prepared tasks: one backend call for the scheduled ones, one broker call for
    the rest and the ``plain`` messages (tasks due now, without options). Returns a
    handle per item, in order (a deduplicated one: the earlier task's).

    Raises:
        BrokerUnavailable, BackendUnavailable: nothing of the failed call was sent; dedupe
            keys claimed for unsent tasks are released again.
    """
    results: list[AsyncResult[Any]] = []
    claimed: list[Outgoing] = []
    sending: list[Outgoing] = []
    for item in items:
        if item.dedupe_key is not None:
            winner = app.backend.claim_dedupe(item.dedupe_key, item.task_id,
                                              app.settings.result_expires)
            if winner != item.task_id:
                logger.debug("task %s deduplicated to %s (%s)", item.task_id, winner,
                             item.fields["task"])
                results.append(_tracked(app, winner))
                continue
            claimed.append(item)
        sending.append(item)
        results.append(_tracked(app, item.task_id))
    if app.settings.eager:
        for item in sending:
            _run_eagerly(app, item.fields)
        return results
    scheduled = [item for item in sending if item.run_at is not None]
    due = [*plain, *(item.message for item in sending if item.run_at is None)]
    stored = False
    try:
        if scheduled:
            hand_over(app, [], [StateChange(i.task_id, states.SCHEDULED, now, name=i.fields["task"],
                                            queue=i.message.queue, eta=i.run_at) for i in scheduled],
                      [ScheduledMessage(i.task_id, i.run_at, i.message)  # type: ignore[arg-type]
                       for i in scheduled])
            stored = True
        hand_over(app, due, [], [])
    except BaseException:
        # Never sent: their keys must not keep pointing at them.
        for item in claimed:
            if not (stored and item.run_at is not None):
                release_dedupe(app, item.dedupe_key, item.task_id)  # type: ignore[arg-type]
        raise
    return results


def hand_over(app: YADTQ, due: Sequence[Message], changes: Sequence[StateChange],
              later: Sequence[ScheduledMessage]) -> None:
    """Store ``later`` (with their ``scheduled`` state ``changes``) in one backend call, then
    publish ``due`` in one broker call; what every client send ends in (a group's too)."""
    if later:
        app.backend.record(changes, later)
    if due:
        app.broker.publish(due)
        app.deliveries.sent()


def release_dedupe(app: YADTQ, key: str, task_id: str) -> None:
    """Drop the dedupe key of a task that was not sent (best effort, logged)."""
    try:
        app.backend.release_dedupe(key, task_id)
    except YADTQError as exc:
        logger.error("task %s was not sent and its dedupe key could not be released (%s); "
                     "identical tasks resolve to it until it expires", task_id, exc,
                     extra={"task_id": task_id})


def _run_eagerly(app: YADTQ, fields: dict[str, Any]) -> None:
    from .worker.executor import execute_eagerly

    envelope = Envelope(id=fields["id"], task=fields["task"], args=tuple(fields["args"]),
                        kwargs=fields["kwargs"], queue=fields["queue"], eta=fields["eta"],
                        expires=fields["expires"], key=fields["key"], created=fields["created"],
                        options=fields["options"])
    app.backend.record(execute_eagerly(app, envelope))


def send_many(app: YADTQ, calls: Iterable[Any]) -> list[AsyncResult[Any]]:
    """Send many tasks in one go; see :meth:`yadtq.YADTQ.send_many`."""
    from .canvas.signature import CANVAS_OPTIONS, Signature

    now = app.now()
    plain = _PlainCalls(app, now)
    items: list[Outgoing] = []
    #: Per call: its task id when sent plainly, else its index in ``items`` (or ``-1`` for
    #: a signature sent through the canvas, after the rest).
    order: list[Union[str, int]] = []
    canvas: list[tuple[int, Signature[Any]]] = []
    for n, call in enumerate(calls):
        if isinstance(call, Signature):
            if not call.options:
                task_id = plain.add(call.task, call.args, call.kwargs)
                if task_id is not None:
                    order.append(task_id)
                    continue
                task: Optional[Task[Any, Any]] = call.task
                name, args, kwargs, options = call.name, call.args, call.kwargs, call.options
            elif CANVAS_OPTIONS & set(call.options):
                canvas.append((n, call))
                order.append(-1)
                continue
            else:
                task = call.task
                name, args, kwargs, options = call.name, call.args, call.kwargs, call.options
        else:
            task, name, args, kwargs, options = _unpack_call(app, n, call)
        unknown = sorted(set(options) - CALL_OPTIONS)
        if unknown:
            raise ConfigurationError(f"send_many: call {n} ({name}): unknown option(s) "
                                     f"{', '.join(unknown)}")
        order.append(len(items))
        items.append(prepare(app, name, tuple(args), dict(kwargs), now, task=task, **options))
    if not items and len(plain.rows) == 1:  # the usual bulk send: one task, no options
        ((queue, rows),) = plain.rows.items()
        app.broker.publish_plain(queue, rows)
        app.deliveries.sent()
        sent: list[AsyncResult[Any]] = []
    else:  # one broker call for everything due (one transaction on SQLite)
        sent = send(app, items, now, plain.messages())
    fresh: list[AsyncResult[Any]] = []  # the plain calls' handles, tracked at once below
    results: list[Optional[AsyncResult[Any]]] = []
    for o in order:
        if isinstance(o, str):
            result: AsyncResult[Any] = AsyncResult(o, app)
            fresh.append(result)
            results.append(result)
        else:
            results.append(sent[o] if o >= 0 else None)
    app.readahead.track_many(fresh)
    for n, sig in canvas:
        results[n] = sig.apply_async()
    return results  # type: ignore[return-value]


class _PlainCalls:
    """The messages of calls without options (most of a bulk send), each encoded with
    what its task and queue share packed once (``PlainEncoder``), at one submit time."""

    def __init__(self, app: YADTQ, now: float) -> None:
        self.app = app
        self.now = now
        #: Per queue: ``(body, key, headers)`` of each message, in order (``Broker.publish_plain``).
        self.rows: dict[str, list[tuple[bytes, bytes, dict[str, bytes]]]] = {}
        self._routes: dict[str, Optional[PlainRoute]] = {}

    def add(self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Optional[str]:
        """Encode one call; its task id, or ``None`` if its task's options need :func:`prepare`.

        Raises:
            SerializationError: an argument cannot be carried.
        """
        name = task.name
        try:
            route = self._routes[name]
        except KeyError:
            route = self._routes[name] = plain_route(self.app, task)
        if route is None or route.encoder is None:
            return None
        tid = new_task_id()
        key = tid.encode()
        rows = self.rows.get(route.queue)
        if rows is None:
            rows = self.rows[route.queue] = []
        rows.append((route.encoder.encode_at(key, args, kwargs, self.now), key,
                     {HEADER_TASK: route.name, HEADER_VERSION: VERSION_HEADER, HEADER_ID: key}))
        return tid

    def messages(self) -> list[Message]:
        """Every message as a :class:`Message`."""
        return [Message(queue, body, key, headers)
                for queue, rows in self.rows.items() for body, key, headers in rows]


class PlainRoute:
    """What sending a task without options needs, worked out once per task and settings:
    its queue, its name as bytes (a header) and its body encoder (``None`` when messages
    are signed: :func:`prepare` signs them)."""

    __slots__ = ("encoder", "name", "queue")

    def __init__(self, queue: str, name: bytes, encoder: Optional[PlainEncoder]) -> None:
        self.queue = queue
        self.name = name
        self.encoder = encoder


def plain_route(app: YADTQ, task: Task[Any, Any]) -> Optional[PlainRoute]:
    """The :class:`PlainRoute` of a task sent without options, kept on the task until the
    app's settings change; ``None`` if its own options (expires, dedupe, priority, eager)
    need :func:`prepare`."""
    if app.send_hook is not None:  # tracing: every send goes through prepare() and its hook
        return None
    settings = app.settings
    cached = task.send_route
    if cached is not None and cached[0] is settings:
        return cached[1]
    opts = task.options
    route: Optional[PlainRoute] = None
    if opts.expires is None and not opts.dedupe and not opts.priority and not settings.eager:
        queue = opts.queue or route_of(settings.task_routes, task.name) or settings.default_queue
        route = PlainRoute(queue, task.name.encode(), PlainEncoder(task.name, queue)
                           if settings.secret_key is None else None)
    task.send_route = (settings, route)
    return route


def plain(app: YADTQ, name: str, route: PlainRoute, args: tuple[Any, ...],
          kwargs: dict[str, Any], now: float) -> Outgoing:
    """A task without options, due now, on ``route`` (:func:`plain_route`): the message
    :func:`prepare` would build, with less work."""
    tid = new_task_id()
    fields = new_body(tid, name, args, kwargs, route.queue, None, None, None, now, {})
    key = tid.encode()
    return Outgoing(tid, Message(route.queue, encode_body(fields, app.settings.secret_key), key,
                                 {HEADER_TASK: route.name, HEADER_VERSION: VERSION_HEADER,
                                  HEADER_ID: key}), None, None, fields)


def delay(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncResult[Any]:
    """``task.delay(*args, **kwargs)``: one encode and one non-blocking publish."""
    app = task.app
    route = plain_route(app, task)
    if route is None:
        return app.submit(task.name, args, kwargs, task=task)
    encoder = route.encoder
    if encoder is None:  # signed
        item = plain(app, task.name, route, args, kwargs, app.now())
        app.broker.publish((item.message,))
        app.deliveries.sent()
        return _tracked(app, item.task_id)
    tid = new_task_id()
    key = tid.encode()
    body = encoder.encode_at(key, args, kwargs, app.now())
    app.broker.publish_plain(route.queue, ((body, key, {HEADER_TASK: route.name,
                                                        HEADER_VERSION: VERSION_HEADER,
                                                        HEADER_ID: key}),))
    app.deliveries.sent()
    return _tracked(app, tid)


def _tracked(app: YADTQ, task_id: str) -> AsyncResult[Any]:
    """The handle on a sent task, remembered for ``get()``'s batched reads (``readahead.py``)."""
    result: AsyncResult[Any] = AsyncResult(task_id, app)
    app.readahead.track(result)
    return result


def _unpack_call(app: YADTQ, n: int, call: Any) -> tuple[Optional[Task[Any, Any]], str, Any, Any,
                                                        dict[str, Any]]:
    from .task import Task

    if not isinstance(call, (tuple, list)) or not 1 <= len(call) <= 4:
        raise ConfigurationError(f"send_many: call {n} must be a signature (task.s(...)) or a tuple "
                                 f"(task, args[, kwargs[, options]]), not {call!r:.80}")
    target, args, kwargs, options = (*call, None, None, None)[:4]
    task: Optional[Task[Any, Any]]
    if isinstance(target, Task):
        task, name = target, target.name
    elif isinstance(target, str):
        task = app.lookup(target)
        name = task.name if task is not None else target
    else:
        raise ConfigurationError(f"send_many: call {n}: expected a task or a task name first, "
                                 f"not {target!r:.80}")
    args = () if args is None else args
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs or {}, dict) \
            or not isinstance(options or {}, dict):
        raise ConfigurationError(f"send_many: call {n} ({name}): args must be a tuple or list, "
                                 f"kwargs and options dicts")
    return task, name, args, kwargs or {}, dict(options or {})
