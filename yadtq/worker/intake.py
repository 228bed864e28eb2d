"""Taking a delivery in: verify its signature, decode it and check it against its task.

A message that can never run here or anywhere (a bad signature, an unreadable body,
an unregistered task, arguments its function cannot take) is recorded failed and
dead-lettered, and consumption goes on (``TaskConsumer.dispatch`` skips it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..canvas.followups import FollowUps
from ..canvas.steps import GATHER
from ..envelope import Envelope, from_body, peek_task_id, verify
from ..exceptions import NotRegistered, ProtocolError
from ..transports.base import Consumer, Delivery, ErrorInfo, StateChange
from .attempts import Identity, arguments_mismatch
from .deadletter import dead_letter, log_given_up
from .links import Link
from .storing import persist

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..task import Task

logger = logging.getLogger(__name__)

#: Call shapes whose fit to their task's signature is remembered (then forgotten at once).
SHAPES_CACHED = 1024


class Intake:
    """Decodes deliveries for the worker's owner thread and dead-letters those that can never run."""

    def __init__(self, app: YADTQ, consumer: Consumer, identity: Identity, stop: threading.Event,
                 backend_link: Optional[Link]) -> None:
        self.secret_key = app.settings.secret_key
        self.app = app
        self.consumer = consumer
        self.identity = identity
        self.stop = stop
        self.backend_link = backend_link
        #: Call shapes already checked against their task's signature (``_arguments_mismatch``).
        self._shapes: dict[tuple[str, int, tuple[str, ...], bool], Optional[str]] = {}

    def decode(self, delivery: Delivery) -> Optional[Envelope]:
        """The delivery's envelope, or ``None`` once it is dead-lettered as unrunnable."""
        try:
            body = verify(delivery.body, self.secret_key)
        except ProtocolError as exc:
            self.reject(delivery, str(exc), claimed_id=peek_task_id(delivery.body))
            return None
        try:
            envelope = from_body(body)
        except ProtocolError as exc:
            # A verified signature vouches for the id: the submitter learns of the failure.
            task_id = body.get("id") if self.secret_key is not None else None
            self.reject(delivery, str(exc), task_id if isinstance(task_id, str) and task_id else None,
                        claimed_id=peek_task_id(delivery.body))
            return None
        task = self.app.tasks.get(envelope.task)
        if task is None:
            self.reject(delivery, f"task {envelope.task!r} is not registered", envelope.id,
                        NotRegistered.__name__, envelope)
            return None
        mismatch = self._arguments_mismatch(task, envelope)
        if mismatch is not None:
            # Never runnable, whoever takes it: dead-lettered like any unrunnable message.
            self.reject(delivery, mismatch, envelope.id, "builtins.TypeError", envelope)
            return None
        return envelope

    def _arguments_mismatch(self, task: Task[Any, Any], envelope: Envelope) -> Optional[str]:
        """:func:`arguments_mismatch`, remembered per task and call shape (positional count,
        keyword names, chord callback or not): the answer depends on nothing else."""
        gathers = bool(envelope.canvas) and bool(envelope.canvas.get(GATHER))
        shape = (task.name, len(envelope.args), tuple(envelope.kwargs), gathers)
        try:
            return self._shapes[shape]
        except KeyError:
            pass
        if len(self._shapes) >= SHAPES_CACHED:
            self._shapes.clear()
        found = self._shapes[shape] = arguments_mismatch(task, envelope)
        return found

    def reject(self, delivery: Delivery, reason: str, task_id: Optional[str] = None,
               error_type: str = ProtocolError.__name__, envelope: Optional[Envelope] = None,
               claimed_id: Optional[str] = None) -> None:
        """Record a message that can never run as failed and dead-letter it; consumption goes on.

        ``task_id`` is given only when the message vouches for it (decoded, and signed
        when a ``secret_key`` is set). Any other message is recorded under a
        dead-letter id of its own (``dlq-<hex>``), never under the id its unverified
        body claims (``claimed_id``, only quoted in the error), so writing to a queue
        cannot change another task's state.
        """
        if task_id is None and claimed_id is not None:
            reason = f"{reason} (claims task id {claimed_id[:64]!r})"
        record_id = task_id or f"dlq-{uuid.uuid4().hex}"
        logger.error("dead-lettering a message from %s: %s (recorded as %s)", delivery.queue, reason,
                     record_id, extra={"task_id": record_id, "task": envelope.task if envelope else None})
        # Dead-lettered first: a final refusal by the dead-letter queue is part of the record.
        refusal = dead_letter(self.consumer, delivery, reason, self.stop)
        if refusal is not None:
            log_given_up(delivery, reason, refusal, record_id)
            reason = f"{reason}; and the dead-letter queue refused it: {refusal}"
        change = StateChange(
            record_id, states.FAILED, time.time(),
            worker=self.identity.name, name=envelope.task if envelope else None, queue=delivery.queue,
            error=ErrorInfo(error_type if "." in error_type else f"yadtq.exceptions.{error_type}", reason,
                            [reason]), dead_lettered=True)
        follow_ups = FollowUps(self.app)  # canvas: a rejected member fails its chain or chord
        if envelope is not None and task_id is not None:
            follow_ups.ended(envelope, states.FAILED, error=change.error)
        persist("recording a rejected message",
                lambda: follow_ups.record(self.app.backend, [change], []), self.stop,
                self.backend_link)
        if refusal is not None:  # else done already, once the dead-letter queue had it
            self.consumer.done([delivery])
