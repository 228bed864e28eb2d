"""Rate-limit admission, the worker's side of flow control: before claiming, rate-limited tasks ask the
backend's atomic ``admit_rate`` step (DESIGN.md section 12).

An attempt over its task's limit is put into the schedule by that same step, due
when a slot frees; here it is recorded ``scheduled`` and its delivery reported done.
So it never blocks its partition, never waits in this worker's memory, and is asked
about once per reservation, never polled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .. import states
from ..flow import HEADER_WAITING, RateLimit, parse_rate_limit, waiting_reason
from ..transports.base import Message, ScheduledMessage, StateChange
from ..transports.limits_store import LimitsBackend, RateRequest

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..transports.base import Delivery
    from .attempts import Pending

logger = logging.getLogger(__name__)


def rate_limit_of(app: YADTQ, name: str) -> Optional[RateLimit]:
    """The parsed rate limit of task ``name`` here, if any (validated at decoration)."""
    task = app.tasks.get(name)
    spec = getattr(task.options, "rate_limit", None) if task is not None else None
    return parse_rate_limit(spec) if spec else None


def admit(app: YADTQ, pending: Sequence[Pending]) -> tuple[list[Pending], list[StateChange], list[Delivery]]:
    """Split ``pending`` into those to claim now and those now waiting in the schedule:
    (to claim, their ``scheduled`` state changes, their deliveries to report done)."""
    asked: list[tuple[Pending, RateLimit]] = []
    go: list[Pending] = []
    for entry in pending:
        limit = rate_limit_of(app, entry.envelope.task)
        if limit is None:
            go.append(entry)
        else:
            asked.append((entry, limit))
    if not asked:
        return go, [], []
    backend = app.backend
    if not isinstance(backend, LimitsBackend):
        logger.warning("backend %s has no rate limits; running rate-limited tasks unlimited",
                       backend.scheme)
        return list(pending), [], []
    requests = []
    for entry, limit in asked:
        env, d = entry.envelope, entry.delivery
        headers = {**d.headers, HEADER_WAITING: waiting_reason(limit).encode()}
        requests.append(RateRequest(env.task, f"{env.id}:{env.retries}", limit.count, limit.period,
                                    ScheduledMessage(env.id, 0.0, Message(d.queue, d.body, d.key,
                                                                          headers))))
    answers = backend.admit_rate(requests)
    changes: list[StateChange] = []
    spent: list[Delivery] = []
    now = app.now()
    for (entry, limit), at in zip(asked, answers):
        if at is None:
            go.append(entry)
            continue
        env = entry.envelope
        logger.info("task %s[%s] waits for its %s until %.3f", env.task, env.id,
                    waiting_reason(limit), at, extra={"task_id": env.id, "task": env.task})
        changes.append(StateChange(env.id, states.SCHEDULED, now, name=env.task, queue=env.queue,
                                   eta=at))
        spent.extend(entry.deliveries())
    return go, changes, spent
