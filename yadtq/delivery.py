"""What happens to a sent task after ``.delay()`` returned: until the broker confirms it.

Some brokers (Kafka) queue a published message locally and deliver it later;
a refusal (after the client's own retries) comes back as a delivery report, and
reports are only served by calls that poll the client. :class:`DeliveryWatch`
makes that reliable for a client that sends and then only waits:

- a daemon thread serves delivery reports while messages are unconfirmed, so a
  refusal reaches the app's delivery-error hook (:func:`record_undelivered`, which
  fails the task unless another copy can still run it) as soon as the client
  knows it, not at the next publish;
- refusals are remembered in the process (bounded), so ``AsyncResult.get()``
  raises ``BrokerUnavailable`` at once, even when the backend cannot be told;
- at interpreter exit, messages still queued are flushed (bounded by
  ``EXIT_FLUSH_TIMEOUT``), so a script that exits right after ``.delay()``
  does not drop them; what is still undelivered then is logged.

``.delay()`` itself never waits for the broker: a short outage only delays
delivery.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Optional

from . import states
from .exceptions import YADTQError
from .transports.base import Broker, ErrorInfo, StateChange

if TYPE_CHECKING:
    from .app import YADTQ

logger = logging.getLogger(__name__)

#: Longest the interpreter's exit waits for sent tasks to reach the broker.
EXIT_FLUSH_TIMEOUT = 10.0
#: How long one wait of the watch thread lasts while messages are unconfirmed.
POLL_INTERVAL = 0.5
#: Refusals remembered per process (the oldest are forgotten first).
REMEMBERED = 10_000


#: How many forks this process descends from (a counter, cheaper to compare than
#: ``os.getpid()`` on every send): a forked child starts its own serving thread.
_forks = [0]


def _forked() -> None:
    _forks[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def delivers_later(broker: Broker) -> bool:
    """Whether ``broker`` may still hold messages after ``publish`` returned (it has a
    ``flush`` of its own)."""
    return type(broker).flush is not Broker.flush


class DeliveryWatch:
    """Delivery reports served in the background, and the refusals they brought."""

    def __init__(self) -> None:
        self._refused: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._broker: Optional[Broker] = None
        self._thread: Optional[threading.Thread] = None
        #: The fork generation (``_forks``) the serving thread was started in; -1: none yet.
        self._generation = -1

    # ------------------------------------------------------------------ refusals
    def refused(self, task_id: str, error: str) -> None:
        """Remember that the message of ``task_id`` was finally refused with ``error``."""
        with self._lock:
            self._refused[task_id] = error
            self._refused.move_to_end(task_id)
            while len(self._refused) > REMEMBERED:
                self._refused.popitem(last=False)

    def refusal(self, task_id: str) -> Optional[str]:
        """Why the message of ``task_id`` was refused, if this process saw it refused."""
        if not self._refused:
            return None
        with self._lock:
            return self._refused.get(task_id)

    # ------------------------------------------------------------------ serving reports
    def watch(self, broker: Broker) -> None:
        """Serve ``broker``'s delivery reports from now on (no-op for brokers that deliver
        within ``publish``)."""
        if delivers_later(broker):
            self._broker = broker

    def sent(self) -> None:
        """Messages were just published: make sure their reports are served.

        Called on every send: two attribute reads when the thread is already awake."""
        if self._broker is None:
            return
        if self._generation != _forks[0]:  # first use, or a forked child: threads are not inherited
            with self._lock:
                if self._generation != _forks[0]:
                    self._generation = _forks[0]
                    self._thread = threading.Thread(target=self._serve, name="yadtq-delivery",
                                                    daemon=True)
                    self._thread.start()
        if not self._wake.is_set():
            self._wake.set()

    def _serve(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            broker = self._broker
            if broker is None:
                continue
            try:
                while broker.flush(POLL_INTERVAL) > 0 and broker is self._broker:
                    pass
            except Exception:
                logger.exception("serving delivery reports failed")

    def stop(self) -> None:
        """Stop serving reports (the broker is being closed)."""
        self._broker = None


def flush_at_exit(app: YADTQ) -> None:
    """Register a bounded flush of ``app``'s sent tasks at interpreter exit (once per app)."""
    atexit.register(_flush_at_exit, weakref.ref(app))


def _flush_at_exit(ref: weakref.ReferenceType[YADTQ]) -> None:
    app = ref()
    if app is None:
        return
    try:
        pending = app.flush(EXIT_FLUSH_TIMEOUT)
    except Exception as exc:  # exiting: report, never raise
        logger.error("flushing sent tasks at exit failed: %s", exc)
        return
    if pending:
        logger.error("%d sent tasks of app %s were not delivered to the broker within %.0f s "
                     "of exiting and are lost", pending, app.name, EXIT_FLUSH_TIMEOUT)


def record_undelivered(app: YADTQ, task_id: Optional[str], error: str) -> None:
    """``app``'s broker delivery-error hook (``Broker.on_delivery_error``).

    A sent task's message was finally refused by the broker: the task fails, and
    ``get()`` in this process raises ``BrokerUnavailable`` at once, unless another copy
    can still run it (it is scheduled, waiting to retry or running: the backend
    decides that in the same atomic step, see :attr:`StateChange.undelivered`)."""
    if task_id is None:
        logger.error("a message could not be delivered to the broker: %s", error)
        return
    try:
        app.backend.record([StateChange(task_id, states.FAILED, time.time(), error=ErrorInfo(
            "yadtq.exceptions.BrokerUnavailable", f"not delivered to the broker: {error}",
            [f"not delivered to the broker: {error}"]), undelivered=True)])
        record = app.backend.get([task_id])[0]
    except YADTQError as exc:
        logger.error("cannot record that task %s was not delivered: %s", task_id, exc,
                     extra={"task_id": task_id})
        record = None
    if record is not None and record.state != states.FAILED:
        logger.warning("a copy of task %s was not delivered to the broker (%s); the task is "
                       "%s, so it is not failed", task_id, error, record.state,
                       extra={"task_id": task_id})
        return
    logger.error("task %s could not be delivered to the broker: %s", task_id, error,
                 extra={"task_id": task_id})
    app.deliveries.refused(task_id, error)
