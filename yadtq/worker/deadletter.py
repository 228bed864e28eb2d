"""Dead-lettering a message that can never run, with a bound on refusals that are final.

An outage of the broker is waited out (the message must reach the dead-letter queue
before its delivery is reported done). A dead-letter queue that refuses the message
for good (``DeadLetterRefused``: a topic policy, missing rights, a record it rejects)
would be waited on for ever, holding the worker's consume loop and the partition's
offset: after ``DEAD_LETTER_ATTEMPTS`` such refusals the caller records the task
failed with the refusal, logs the message, and reports the delivery done.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Optional

from ..exceptions import DeadLetterRefused, YADTQError
from ..transports.base import Consumer, Delivery

logger = logging.getLogger(__name__)

#: Final refusals of one dead letter before it is given up (logged, not kept).
DEAD_LETTER_ATTEMPTS = 3
#: Bytes of a given-up message's body quoted in the log (base64).
LOGGED_BODY_BYTES = 4096


def dead_letter(consumer: Consumer, delivery: Delivery, reason: str, stop: threading.Event) -> Optional[str]:
    """Send ``delivery`` to the dead-letter queue and report it done; ``None`` once done.

    Returns the refusal's text after ``DEAD_LETTER_ATTEMPTS`` final refusals: the
    delivery is then *not* done yet (the caller records why, then reports it done).
    Other failures are retried with backoff until the broker takes it; once ``stop``
    is set they are given up after a few more tries and raised (the delivery is then
    delivered again).
    """
    delay = 0.1
    refusals = 0
    while True:
        try:
            consumer.dead_letter(delivery, reason)
            return None
        except DeadLetterRefused as exc:
            refusals += 1
            if refusals >= DEAD_LETTER_ATTEMPTS:
                return str(exc)
            logger.debug("dead letter refused (%d of %d): %s", refusals, DEAD_LETTER_ATTEMPTS, exc)
        except YADTQError as exc:
            if stop.is_set() and delay > 1:
                raise
            logger.log(logging.WARNING if delay == 0.1 else logging.DEBUG,
                       "dead-lettering a message failed (%s); retrying in %.1f s", exc, delay)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def log_given_up(delivery: Delivery, reason: str, refusal: str, record_id: str) -> None:
    """Log a message the dead-letter queue refused for good, once, with enough to rebuild it."""
    body = delivery.body
    quoted = base64.b64encode(body[:LOGGED_BODY_BYTES]).decode()
    logger.error("message from %s not dead-lettered, dropped after %d refusals: %s; it was rejected "
                 "because %s; recorded failed as %s; key=%r headers=%r body (%d bytes, base64%s)=%s",
                 delivery.queue, DEAD_LETTER_ATTEMPTS, refusal, reason, record_id, delivery.key,
                 sorted(delivery.headers), len(body),
                 f", first {LOGGED_BODY_BYTES} bytes" if len(body) > LOGGED_BODY_BYTES else "", quoted,
                 extra={"task_id": record_id})
