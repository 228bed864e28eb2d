"""Sending a canvas from a client: build its steps, store its groups, publish its first tasks.

Groups and chords are stored in the backend *before* any member is sent, so a
member can never finish before its chord exists. Every later task (the next
step of a chain, callbacks, a chord's callback) is sent by the worker that
records its trigger, in that same atomic step (see ``followups.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from .. import states
from ..collecting import collector_paused
from ..envelope import Envelope, encode
from ..exceptions import ConfigurationError
from ..result import AsyncResult
from ..sending import hand_over
from ..task import current_request
from ..transports.base import Message, ScheduledMessage, StateChange
from ..transports.canvas_store import GroupSpec
from .eager import run_eagerly
from .group_result import GroupResult, canvas_backend
from .plain_group import send_plain_group
from .signature import Canvas, Signature, check_options, chord, group
from .steps import (
    CHAIN,
    CHORD,
    GATHER,
    GROUP,
    NO_VALUE,
    SIG,
    Step,
    compile_canvas,
    groups_of,
    start,
    strip,
)

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: Options a whole canvas takes at ``apply_async``.
CANVAS_APPLY_OPTIONS = frozenset({"link", "link_error", "countdown", "eta"})

Result = Union[AsyncResult[Any], GroupResult]


def apply(item: Canvas, args: Iterable[Any] = (), kwargs: Optional[dict[str, Any]] = None,
          options: Optional[dict[str, Any]] = None) -> Result:
    """Send a canvas; returns the handle of its result (a group's: a :class:`GroupResult`).

    Raises:
        ConfigurationError: a canvas that cannot be built (e.g. an empty chain).
        SerializationError: an argument cannot be carried (nothing is sent).
    """
    options = dict(options or {})
    args = tuple(args)
    if isinstance(item, Signature):
        item = item.clone(args, kwargs, **options)
        options, args, kwargs = {}, (), None
    app = item.app if isinstance(item, Signature) else item._app()
    unknown = sorted(set(options) - CANVAS_APPLY_OPTIONS)
    if unknown:
        check_options("canvas", options)
        raise ConfigurationError(f"a canvas takes only {', '.join(sorted(CANVAS_APPLY_OPTIONS))} "
                                 f"at apply_async, not {', '.join(unknown)}: set them on signatures")
    if isinstance(item, group) and not (options or args or kwargs):
        with collector_paused():  # a large group: many new objects, none garbage
            plain = send_plain_group(app, item)
        if plain is not None:
            return plain
    if args or kwargs:
        item = _with_partial(item, args, kwargs or {})
    if options.get("countdown") is not None or options.get("eta") is not None:
        item = _with_first(item, {k: options[k] for k in ("countdown", "eta") if k in options})
    step = compile_canvas(item, app, link=options.get("link"), link_error=options.get("link_error"))
    send_steps(app, step)
    return result_of(step, app)


def _with_partial(item: Canvas, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Canvas:
    """Partial arguments go to the first task of a chain, every member of a group, the
    header of a chord."""
    if isinstance(item, Signature):
        return item.clone(args, kwargs)
    if isinstance(item, group):
        return group([_with_partial(t, args, kwargs) for t in item.tasks])
    if isinstance(item, chord):
        return chord(_with_partial(item.header, args, kwargs), item.body)
    first, *rest = item.tasks
    return type(item)(_with_partial(first, args, kwargs), *rest)


def _with_first(item: Canvas, options: dict[str, Any]) -> Canvas:
    """``countdown``/``eta`` of a whole canvas: on the tasks that start it."""
    if isinstance(item, Signature):
        return item.set(**options)
    if isinstance(item, group):
        return group([_with_first(t, options) for t in item.tasks])
    if isinstance(item, chord):
        return chord(_with_first(item.header, options), item.body)
    first, *rest = item.tasks
    return type(item)(_with_first(first, options), *rest)


def send_steps(app: YADTQ, step: Step) -> None:
    """Store the groups of ``step``, then publish the tasks that begin it."""
    now = app.now()  # etas and due times are on the backend's clock (clock.py)
    request = current_request()
    parent_id = request.id if request is not None and request.id else None
    root_id = (request.root_id or request.id) if parent_id and request is not None else None
    root = root_id or step.get("id") or _first_id(step)
    specs = [_group_spec(app, g, root, now) for g in groups_of(step)]
    envelopes = start(strip(step), NO_VALUE, parent_id=parent_id, root_id=root, now=now)
    if step["t"] == CHORD and not step["members"]:  # nothing to wait for: call back at once
        envelopes = [_callback_envelope(step, root, now)]
    if specs:
        canvas_backend(app).save_groups(specs)
    publish(app, envelopes, now)


def _first_id(step: Step) -> str:
    while step["t"] == CHAIN:
        step = step["steps"][0]
    return str(step["id"])


def _callback_envelope(step: Step, root: str, now: float) -> Envelope:
    """The first task of a chord's callback, told to gather the members' results."""
    (envelope,) = start(strip(step["body"]), NO_VALUE, parent_id=step["id"], root_id=root, now=now)
    body_first = step["body"]["steps"][0] if step["body"]["t"] == CHAIN else step["body"]
    if not body_first["im"]:
        envelope.canvas[GATHER] = step["id"]
    return envelope


def _group_spec(app: YADTQ, step: Step, root: str, now: float) -> GroupSpec:
    from .steps import final_step

    ids = []
    for m in step["members"]:
        final = final_step(m)
        ids.append(final["id"] if final is not None else m["id"])
    callback = None
    if step["t"] == CHORD and ids:  # an empty chord's callback is sent at once, not counted
        envelope = _callback_envelope(step, root, now)
        callback = ScheduledMessage(envelope.id, now, _message(app, envelope))
    return GroupSpec(step["id"], tuple(ids), now, callback)


def _message(app: YADTQ, envelope: Envelope) -> Message:
    return Message(queue=envelope.queue, body=encode(envelope, app.settings.secret_key),
                   key=envelope.routing_key(), headers=envelope.headers())


def publish(app: YADTQ, envelopes: Sequence[Envelope], now: float) -> None:
    """Publish envelopes due now in one batch; those with an eta go to the schedule.
    With ``eager=True`` they run here, now, with everything they set off."""
    if app.settings.eager:
        for envelope in envelopes:
            _message(app, envelope)  # raises SerializationError before anything runs
        run_eagerly(app, envelopes)
        return
    due: list[Message] = []
    later: list[ScheduledMessage] = []
    changes: list[StateChange] = []
    hook = app.send_hook
    for envelope in envelopes:
        added = hook(envelope.id, envelope.queue, envelope.options) if hook is not None else None
        message = _message(app, envelope)  # raises SerializationError before anything is sent
        if added:
            message = Message(message.queue, message.body, message.key, {**message.headers, **added})
        if envelope.eta is not None and envelope.eta > now:
            later.append(ScheduledMessage(envelope.id, envelope.eta, message))
            changes.append(StateChange(envelope.id, states.SCHEDULED, now, name=envelope.task,
                                       queue=envelope.queue, eta=envelope.eta))
        else:
            due.append(message)
    hand_over(app, due, changes, later)


def result_of(step: Step, app: YADTQ, parent: Optional[Result] = None) -> Result:
    """The handle on a step's result; ``.parent`` links back through a chain."""
    kind = step["t"]
    if kind == SIG:
        result: AsyncResult[Any] = AsyncResult(step["id"], app)
        result.parent = parent
        return result
    if kind == CHAIN:
        current = parent
        for s in step["steps"]:
            current = result_of(s, app, current)
        assert current is not None
        return current
    # Members are never groups (``steps`` flattens them), so each result is an AsyncResult.
    members = [cast("AsyncResult[Any]", result_of(m, app)) for m in step["members"]]
    header = GroupResult(step["id"], members, app)
    header.parent = parent
    if kind == GROUP:
        return header
    return result_of(step["body"], app, header)

