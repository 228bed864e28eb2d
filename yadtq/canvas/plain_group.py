"""The short way to send a group of plain signatures (``group(add.s(1, 2), ...).apply_async()``).

A group whose members are all signatures without options, of tasks without options
of their own (:func:`yadtq.sending.plain_route`), to one queue, sent from outside a
running task, needs none of the canvas machinery per member: each member's message
is what :func:`yadtq.canvas.steps.start` would build (parent and root: the group),
encoded with what the members share packed once (``PlainBodies``). As on the long
way, the group is stored first (one backend call), then its members are published in
one broker call. Anything else takes the long way (``send.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..envelope import HEADER_ID, HEADER_TASK, HEADER_VERSION, VERSION_HEADER, PlainBodies
from ..result import AsyncResult
from ..sending import PlainRoute, plain_route
from ..task import current_request
from ..transports.canvas_store import GroupSpec
from .group_result import GroupResult, canvas_backend
from .signature import Signature, group
from .steps import new_id

if TYPE_CHECKING:
    from ..app import YADTQ


def send_plain_group(app: YADTQ, item: group) -> Optional[GroupResult]:
    """Send ``item`` the short way and return its result; ``None`` (nothing sent) when it
    must take the long way.

    Raises:
        SerializationError: an argument cannot be carried (nothing is sent).
    """
    request = current_request()
    if not item.tasks or (request is not None and request.id):
        return None
    queue: Optional[str] = None
    sigs: list[Signature[Any]] = []
    routes: list[PlainRoute] = []
    for sig in item.tasks:
        if not isinstance(sig, Signature) or sig.options:
            return None
        sigs.append(sig)
        route = plain_route(app, sig.task)
        # The long way routes a member by its task's queue or the default queue only.
        member_queue = sig.task.options.queue or app.settings.default_queue
        if route is None or route.encoder is None or route.queue != member_queue \
                or (queue is not None and member_queue != queue):
            return None
        queue = member_queue
        routes.append(route)
    assert queue is not None
    group_id = new_id()
    now = app.now()
    encoders: dict[bytes, PlainBodies] = {}
    rows: list[tuple[bytes, bytes, dict[str, bytes]]] = []
    ids: list[str] = []
    for sig, route in zip(sigs, routes):
        encoder = encoders.get(route.name)
        if encoder is None:
            encoder = encoders[route.name] = PlainBodies(sig.task.name, queue, now, group_id, group_id)
        task_id = new_id()
        key = task_id.encode()
        rows.append((encoder.encode_at(key, sig.args, sig.kwargs, now), key,
                     {HEADER_TASK: route.name, HEADER_VERSION: VERSION_HEADER, HEADER_ID: key}))
        ids.append(task_id)
    canvas_backend(app).save_groups([GroupSpec(group_id, tuple(ids), now)])
    app.broker.publish_plain(queue, rows)
    app.deliveries.sent()
    members: list[AsyncResult[Any]] = [AsyncResult(task_id, app) for task_id in ids]
    return GroupResult(group_id, members, app)
