"""A canvas as plain data ("steps"): fixed when it is built, carried in envelopes.

Building (:func:`compile_canvas`) gives every task its id up front, so a
follow-up published twice is still one task (the claim runs it once). A step is
a msgpack-able dict, one of:

- ``{"t": "sig", "id", "task", "args", "kwargs", "queue", "key", "im", "opts", "cd",
  "eta", "exp", "link", "link_error", "chord"}`` one task;
- ``{"t": "chain", "steps": [...]}`` steps in turn; only the last may be a group or
  chord (a group followed by more steps becomes a chord);
- ``{"t": "group", "id", "members": [...]}`` steps in parallel;
- ``{"t": "chord", "id", "members": [...], "body": step}`` a group whose callback is
  stored in the backend; each member's final task carries ``chord`` =
  ``{"id", "index", "fail": body}`` (what to fail with ChordError if it fails).

:func:`start` turns a step into the envelopes to send now, in the client and in
the worker's recorder alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from ..envelope import Envelope
from ..exceptions import ConfigurationError
from ..task_ids import new_task_id
from .signature import Canvas, Signature, chain, chord, group

if TYPE_CHECKING:
    from ..app import YADTQ

Step = dict[str, Any]

#: ``start``'s "no parent result" (``None`` is a result like any other).
NO_VALUE: Any = object()

SIG, CHAIN, GROUP, CHORD = "sig", "chain", "group", "chord"
#: Envelope ``canvas`` keys.
REST, LINK, LINK_ERROR, MEMBER, GATHER = "chain", "link", "link_error", "chord", "gather"


def new_id() -> str:
    """A new task or group id (a version 7 UUID's 32 hex digits, ``task_ids.new_task_id``)."""
    return new_task_id()


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


# --------------------------------------------------------------------------- building


def compile_canvas(item: Canvas, app: YADTQ, *, link: Any = None, link_error: Any = None) -> Step:
    """The step tree of a canvas, ids fixed, chains folded, chord members marked;
    ``link``/``link_error`` attached as :func:`attach` says."""
    step = _compile(item, app)
    attach(step, [_compile(c, app) for c in _as_list(link)],
           [_compile(c, app) for c in _as_list(link_error)])
    _mark(step, None)
    return step


def _compile(item: Canvas, app: YADTQ) -> Step:
    if isinstance(item, Signature):
        return _compile_sig(item, app)
    if isinstance(item, chain):
        return _fold([_compile(t, app) for t in item.tasks])
    if isinstance(item, chord):
        if item.body is None:
            raise ConfigurationError("chord has no callback: chord(header, callback)")
        members = [_compile(t, app) for t in item.header.tasks]
        return _chord(members, _compile(item.body, app), new_id())
    if isinstance(item, group):
        return {"t": GROUP, "id": new_id(), "members": _flatten_group(
            [_compile(t, app) for t in item.tasks])}
    raise ConfigurationError(f"not a signature or canvas: {item!r}")


def _compile_sig(sig: Signature[Any], app: YADTQ) -> Step:
    opts = dict(sig.options)
    task_opts = sig.task.options
    extra: dict[str, Any] = {k: opts[k] for k in ("max_retries", "time_limit", "priority")
                             if opts.get(k) is not None}
    if extra.get("priority", task_opts.priority):  # the default level travels as no option
        extra["priority"] = extra.get("priority", task_opts.priority)
    else:
        extra.pop("priority", None)
    expires = opts.get("expires", task_opts.expires)
    step: Step = {
        "t": SIG, "id": opts.get("task_id") or new_id(), "task": sig.task.name,
        "args": list(sig.args), "kwargs": dict(sig.kwargs),
        "queue": opts.get("queue") or task_opts.queue or app.settings.default_queue,
        "key": opts.get("key"), "im": sig.immutable, "opts": extra,
        "cd": opts.get("countdown"), "eta": _epoch(opts["eta"]) if opts.get("eta") is not None else None,
        "exp": None, "expa": None,
        LINK: [_compile(c, app) for c in _as_list(opts.get("link"))],
        LINK_ERROR: [_compile(c, app) for c in _as_list(opts.get("link_error"))],
    }
    if isinstance(expires, datetime):
        step["expa"] = expires.timestamp()
    elif expires is not None:
        step["exp"] = float(expires)
    return step


def _as_list(value: Any) -> list[Canvas]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _flatten_group(members: list[Step]) -> list[Step]:
    flat: list[Step] = []
    for m in members:
        flat.extend(m["members"] if m["t"] == GROUP else [m])
    return flat


def _flatten_chain(steps: list[Step]) -> list[Step]:
    flat: list[Step] = []
    for s in steps:
        flat.extend(s["steps"] if s["t"] == CHAIN else [s])
    return flat


def _chord(members: list[Step], body: Step, chord_id: str) -> Step:
    first = body["steps"][0] if body["t"] == CHAIN else body
    if first["t"] != SIG:
        raise ConfigurationError("a chord's callback must start with a task signature")
    if final_step(body) is None:
        raise ConfigurationError("a chord's callback cannot end in a group")
    return {"t": CHORD, "id": chord_id, "members": _flatten_group(members), "body": body}


def _fold(steps: list[Step]) -> Step:
    """A chain's steps: a group followed by more steps becomes a chord whose callback is
    the rest; a chord followed by more steps takes them into its callback."""
    steps = _flatten_chain(steps)
    if not steps:
        raise ConfigurationError("an empty chain")
    for i, s in enumerate(steps[:-1]):
        rest = steps[i + 1:]
        if s["t"] == GROUP:
            folded = _chord(s["members"], _fold(rest), s["id"])
        elif s["t"] == CHORD:
            folded = _chord(s["members"], _fold([s["body"], *rest]), s["id"])
        else:
            continue
        steps = [*steps[:i], folded]
        break
    return steps[0] if len(steps) == 1 else {"t": CHAIN, "steps": steps}


def final_step(step: Step) -> Optional[Step]:
    """The task whose result stands for ``step`` (``None`` for a group)."""
    if step["t"] == SIG:
        return step
    if step["t"] == CHAIN:
        return final_step(step["steps"][-1])
    if step["t"] == CHORD:
        return final_step(step["body"])
    return None


def _mark(step: Step, member: Optional[dict[str, Any]]) -> None:
    """Give the final task of every chord member its membership (top-down, so a chord's
    body is complete, outer membership included, before members copy it)."""
    kind = step["t"]
    if kind == SIG:
        for callback in (*step[LINK], *step[LINK_ERROR]):
            _mark(callback, None)
        if member is not None:
            step[MEMBER] = member
    elif kind == CHAIN:
        for s in step["steps"][:-1]:
            _mark(s, None)
        _mark(step["steps"][-1], member)
    elif kind == GROUP:
        if member is not None:
            raise ConfigurationError("a group cannot be a chord member: flatten it into the chord")
        for m in step["members"]:
            _mark(m, None)
    else:
        _mark(step["body"], member)
        fail = strip(step["body"])
        for index, m in enumerate(step["members"]):
            if m["t"] == GROUP:
                raise ConfigurationError("a group cannot be a chord member")
            _mark(m, {"id": step["id"], "index": index, "fail": fail})


def strip(step: Step) -> Step:
    """``step`` without chord callbacks (they live in the backend): what envelopes carry."""
    if step["t"] == CHORD:
        return {k: v for k, v in step.items() if k != "body"}
    if step["t"] == CHAIN:
        return {**step, "steps": [strip(s) for s in step["steps"]]}
    return step


def walk(step: Step) -> Iterator[Step]:
    """Every task step inside ``step`` (not its callbacks), depth first."""
    if step["t"] == SIG:
        yield step
        return
    children = step["steps"] if step["t"] == CHAIN else step["members"]
    for child in children:
        yield from walk(child)
    if step["t"] == CHORD and "body" in step:
        yield from walk(step["body"])


def groups_of(step: Step) -> Iterator[Step]:
    """Every group and chord inside ``step``, callbacks included."""
    if step["t"] in (GROUP, CHORD):
        yield step
    children: list[Step] = []
    if step["t"] == SIG:
        children = [*step[LINK], *step[LINK_ERROR]]
    elif step["t"] == CHAIN:
        children = step["steps"]
    else:
        children = [*step["members"], *([step["body"]] if "body" in step else [])]
    for child in children:
        yield from groups_of(child)


# --------------------------------------------------------------------------- sending


def start(step: Step, value: Any = NO_VALUE, *, parent_id: Optional[str], root_id: Optional[str],
          rest: Sequence[Step] = (), now: Optional[float] = None) -> list[Envelope]:
    """The envelopes that begin ``step``: its first task (or every member of a group),
    each given ``value`` (a parent's result) as its first argument unless immutable,
    carrying ``rest``: the steps that follow it on success."""
    now = time.time() if now is None else now
    kind = step["t"]
    if kind == SIG:
        return [_envelope(step, value, parent_id, root_id, rest, now)]
    if kind == CHAIN:
        steps = step["steps"]
        return start(steps[0], value, parent_id=parent_id, root_id=root_id,
                     rest=[*steps[1:], *rest], now=now)
    if rest:
        raise ConfigurationError("a group can only end a chain")
    envelopes: list[Envelope] = []
    for member in step["members"]:
        envelopes += start(member, value, parent_id=parent_id or step["id"],
                           root_id=root_id or step["id"], now=now)
    return envelopes


def _envelope(step: Step, value: Any, parent_id: Optional[str], root_id: Optional[str],
              rest: Sequence[Step], now: float) -> Envelope:
    args = list(step["args"])
    if value is not NO_VALUE and not step["im"]:
        args.insert(0, value)
    eta = step["eta"] if step["eta"] is not None else (now + step["cd"] if step["cd"] else None)
    expires = step["expa"] if step["expa"] is not None else (
        now + step["exp"] if step["exp"] is not None else None)
    canvas: dict[str, Any] = {}
    if rest:
        canvas[REST] = [strip(s) for s in rest]
    for name in (LINK, LINK_ERROR):
        if step[name]:
            canvas[name] = [strip(s) for s in step[name]]
    if step.get(MEMBER):
        canvas[MEMBER] = step[MEMBER]
    return Envelope(
        id=step["id"], task=step["task"], args=tuple(args), kwargs=dict(step["kwargs"]),
        queue=step["queue"], eta=eta, expires=expires, parent_id=parent_id,
        root_id=root_id or step["id"], key=step["key"], created=now, options=dict(step["opts"]),
        canvas=canvas,
    )


def attach(step: Step, link: Sequence[Step], link_error: Sequence[Step]) -> None:
    """Add callbacks to a whole canvas: ``link`` to its final task (the result), and
    ``link_error`` to every task in it (whichever fails calls it)."""
    if link:
        final = final_step(step)
        if final is None:
            raise ConfigurationError("link on a group: use a chord to act on all results")
        final[LINK] = [*final[LINK], *link]
    if link_error:
        for s in walk(step):
            s[LINK_ERROR] = [*s[LINK_ERROR], *link_error]
