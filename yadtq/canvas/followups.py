"""What a finished task of a canvas sets off, stored in the SAME step as its outcome.

The worker's recorder calls :meth:`FollowUps.add` for each outcome of a batch and
:meth:`FollowUps.record` instead of ``backend.record``. So the next step of a
chain, ``link``/``link_error`` callbacks and chord counting are never a separate
step after the outcome is stored: a worker killed between two lines either
stored the outcome with all its follow-ups, or neither (and the task is
delivered again). On Redis Cluster the parts in other slot groups are separate
steps; a redelivered copy finds the task finished and completes them
(:func:`record_unrun`). Follow-ups enter the schedule due now and the scheduler
publishes them; their ids were fixed when the canvas was built, so a follow-up
published twice still runs once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional

from .. import states
from ..envelope import Envelope, encode, unpack
from ..exceptions import ChordError, SerializationError, YADTQError
from ..transports.base import ErrorInfo, Message, ResultBackend, ScheduledMessage, StateChange
from ..transports.canvas_store import ChordJoin
from .group_result import canvas_backend
from .steps import GATHER, LINK, LINK_ERROR, MEMBER, REST, Step, start, walk

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..worker.executor import Outcome

logger = logging.getLogger(__name__)

CHORD_ERROR = f"{ChordError.__module__}.{ChordError.__qualname__}"
#: Options a follow-up inherits from the task that sets it off: the trace context
#: (``contrib/otel.py``), so a chain's later steps continue the trace it was sent in.
INHERITED_OPTIONS = ("trace",)


@dataclass
class FollowUps:
    """The follow-ups of one batch of outcomes."""

    app: YADTQ
    changes: list[StateChange] = field(default_factory=list)
    scheduled: list[ScheduledMessage] = field(default_factory=list)
    joins: list[ChordJoin] = field(default_factory=list)

    def add(self, envelope: Envelope, outcome: Outcome) -> None:
        """Add what ``outcome`` of ``envelope`` sets off (nothing for a plain task, or
        for an attempt that will be retried)."""
        self.ended(envelope, outcome.state, outcome.result, outcome.error)

    def ended(self, envelope: Envelope, state: str, result: Optional[bytes] = None,
              error: Optional[ErrorInfo] = None) -> None:
        """Add what a task's final ``state`` sets off: on ``success`` the next step of its
        chain, its ``link`` callbacks and its chord count; on ``failed`` its ``link_error``
        callbacks; on ``failed`` or ``revoked`` (expired) the failure of the rest of its
        chain and of its chord. Nothing for other states or plain tasks.

        A malformed ``canvas`` field (only a client bug could send one: messages are
        checked, and signed with ``secret_key``) loses its follow-ups, logged, and
        never the outcome itself.
        """
        if not envelope.canvas or state not in (states.SUCCESS, states.FAILED, states.REVOKED):
            return
        changes, scheduled, joins = len(self.changes), len(self.scheduled), len(self.joins)
        try:
            self._add(envelope, state, result, error)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, YADTQError) as exc:
            del self.changes[changes:], self.scheduled[scheduled:], self.joins[joins:]
            logger.error("task %s[%s]: malformed canvas, its follow-ups are dropped: %r",
                         envelope.task, envelope.id, exc,
                         extra={"task_id": envelope.id, "task": envelope.task})

    def _add(self, envelope: Envelope, state: str, result: Optional[bytes],
             error: Optional[ErrorInfo]) -> None:
        canvas = envelope.canvas
        now = self.app.now()  # due times are on the backend's clock (clock.py)
        root = envelope.root_id or envelope.id
        rest: list[Step] = canvas.get(REST) or []
        member: Optional[dict[str, Any]] = canvas.get(MEMBER)
        carried = {k: envelope.options[k] for k in INHERITED_OPTIONS if k in envelope.options}
        if state == states.SUCCESS:
            value = unpack(result) if result is not None else None
            if rest:
                self._send(start(rest[0], value, parent_id=envelope.id, root_id=root,
                                 rest=rest[1:], now=now), now, carried)
            for link in canvas.get(LINK) or []:
                self._send(start(link, value, parent_id=envelope.id, root_id=root, now=now), now, carried)
            if member:
                self.joins.append(ChordJoin(member["id"], int(member["index"]), envelope.id))
            return
        if state == states.FAILED:
            for errback in canvas.get(LINK_ERROR) or []:
                self._send(start(errback, envelope.id, parent_id=envelope.id, root_id=root,
                                 now=now), now, carried)
        error = error or ErrorInfo("builtins.Exception", f"task {state}")
        for step in rest:  # the chain stops here, and this failure is the chain's
            for task in walk(step):
                self._fail(task, error, now)
        if member:
            self._fail_chord(member, envelope.id, error, now)

    def _send(self, envelopes: Sequence[Envelope], now: float,
              carried: Optional[Mapping[str, Any]] = None) -> None:
        for envelope in envelopes:
            if carried:  # the options a follow-up inherits (the trace context: contrib/otel.py)
                for name, value in carried.items():
                    envelope.options.setdefault(name, value)
            try:
                body = encode(envelope, self.app.settings.secret_key)
            except SerializationError as exc:
                logger.error("cannot send follow-up %s[%s]: %s", envelope.task, envelope.id, exc,
                             extra={"task_id": envelope.id, "task": envelope.task})
                self.changes.append(StateChange(envelope.id, states.FAILED, now, name=envelope.task,
                                                queue=envelope.queue, error=ErrorInfo(
                                                    "yadtq.exceptions.SerializationError", str(exc),
                                                    [str(exc)])))
                continue
            message = Message(envelope.queue, body, envelope.routing_key(), envelope.headers())
            self.scheduled.append(ScheduledMessage(envelope.id, max(now, envelope.eta or now), message))

    def _fail(self, task: Step, error: ErrorInfo, now: float) -> None:
        self.changes.append(StateChange(task["id"], states.FAILED, now, name=task["task"],
                                        queue=task["queue"], error=error))
        if task.get(MEMBER):
            self._fail_chord(task[MEMBER], task["id"], error, now)

    def _fail_chord(self, member: dict[str, Any], failed_id: str, cause: ErrorInfo,
                    now: float) -> None:
        """A member failed: the chord fails (its callback never runs) with ChordError."""
        self.joins.append(ChordJoin(member["id"], int(member["index"]), failed_id))
        message = (f"chord {member['id']} failed: member {failed_id} raised "
                   f"{cause.type.rpartition('.')[2]}: {cause.message}")
        error = ErrorInfo(CHORD_ERROR, message, [message])
        for task in walk(member["fail"]):
            self._fail(task, error, now)

    def record(self, backend: ResultBackend, changes: Sequence[StateChange],
               scheduled: Sequence[ScheduledMessage]) -> None:
        """Store ``changes``/``scheduled`` and these follow-ups in one atomic step."""
        if not (self.changes or self.scheduled or self.joins):  # plain tasks: as before
            backend.record(changes, scheduled)
            return
        changes = [*changes, *self.changes]
        scheduled = [*scheduled, *self.scheduled]
        if self.joins:
            canvas_backend(self.app).record_joined(changes, scheduled, self.joins)
        else:
            backend.record(changes, scheduled)


def record_unrun(app: YADTQ, envelopes: Sequence[Envelope]) -> None:
    """For canvas tasks a claim did not run because they are over: store again, in one
    step, what their stored outcome sets off.

    - ``revoked`` (revoked before they ran): the failure of the rest of their chain and
      of their chord (first recorded here).
    - ``success`` or ``failed`` (a copy delivered again after its outcome was stored):
      everything :meth:`FollowUps.ended` gives for that outcome. On one Redis and on
      SQLite it was stored with the outcome, in one step, so this changes nothing. On
      Redis Cluster the outcome, its chord count (``record_joined``) and follow-ups of
      other slot groups are separate steps, and a worker killed between them left the
      delivery not reported done: this is where its redelivery completes them. Only
      follow-up messages whose task has no record yet are sent again (one that ran or
      runs has one); a copy of one that is still on its way runs once all the same.

    Called before the deliveries are reported done, so a crash in between only means
    doing it again on the next delivery: a chord counts a member once (a set of
    indexes) and fires or fails once, and changes to ready tasks are refused.
    """
    records = app.backend.get([e.id for e in envelopes])
    follow_ups = FollowUps(app)
    for envelope, record in zip(envelopes, records):
        if record is None:
            continue
        if record.state == states.REVOKED:
            follow_ups.ended(envelope, states.REVOKED, error=record.error or ErrorInfo(
                "yadtq.exceptions.Revoked", "revoked", ["revoked"]))
        elif record.state in (states.SUCCESS, states.FAILED):
            follow_ups.ended(envelope, record.state, record.result, record.error)
    if follow_ups.scheduled:
        known = app.backend.get([s.task_id for s in follow_ups.scheduled])
        follow_ups.scheduled = [s for s, r in zip(follow_ups.scheduled, known) if r is None]
    follow_ups.record(app.backend, [], [])


def gather(app: YADTQ, envelope: Envelope) -> Envelope:
    """A chord callback's envelope with the members' results (in submission order) put
    before its arguments; any other envelope as it is.

    Raises:
        ChordError: a member's result is missing (forgotten or expired) or not a success.
    """
    group_id = envelope.canvas.get(GATHER)
    if not group_id:
        return envelope
    info = canvas_backend(app).group_info(group_id)
    if info is None:
        raise ChordError(f"chord {group_id} is gone (expired?): cannot gather its results")
    values = []
    for task_id, record in zip(info.member_ids, app.backend.get(list(info.member_ids))):
        if record is None or record.state != states.SUCCESS:
            raise ChordError(f"chord {group_id}: member {task_id} has no result to gather "
                             f"({record.state if record else 'gone'})")
        values.append(unpack(record.result) if record.result is not None else None)
    return replace(envelope, args=(values, *envelope.args))
