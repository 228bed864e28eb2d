"""The link to the Kafka cluster as one process sees it: one warning when it is lost, one when back.

librdkafka reports every failed connection attempt (through ``error_cb`` and its
log callback), about ten a second while a broker is down. Forwarded one by one
that is ~100 lines for a 6 s outage. :class:`KafkaLink` turns them into state:
a client's link is *lost* when librdkafka says all its brokers are down, and
*back* when its statistics show a broker connection up again. The process logs
one warning when the first of its clients loses the link and one when the last
has it back; the individual errors go to DEBUG.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Optional

from confluent_kafka import KafkaError

logger = logging.getLogger(__name__)
rdkafka_logger = logging.getLogger(__name__.rpartition(".")[0] + ".kafka.librdkafka")

#: ``statistics.interval.ms`` of yadtq's producers: how soon a restored link is noticed.
STATS_INTERVAL_MS = 1000
#: ... and of its consumers (workers): librdkafka builds a statistics document of several
#: KB each time, and the consume loop is woken for it, which was a third of an idle
#: worker's CPU at one a second. A worker's link is noticed back within this.
CONSUMER_STATS_INTERVAL_MS = 5000


def stats_interval_ms(role: str) -> int:
    """``statistics.interval.ms`` of a ``producer`` or ``consumer``."""
    return CONSUMER_STATS_INTERVAL_MS if role == "consumer" else STATS_INTERVAL_MS

#: Errors that concern the connection, not a request: state, never forwarded one by one.
CONNECTION_ERRORS = frozenset({
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._TIMED_OUT,
})
#: librdkafka log facilities that repeat per connection attempt, or while a restarted
#: broker loads its coordinators and elects leaders (all retried by librdkafka), or that
#: yadtq reports itself (a session timeout: "partitions ... lost").
NOISY_FACILITIES = frozenset({"FAIL", "REQTMOUT", "BROKERFAIL", "CONNECT", "METADATAUPDATE", "GETPID",
                              "SESSTMOUT"})


class KafkaLink:
    """Link state of every librdkafka client of one broker object (thread-safe)."""

    def __init__(self, servers: str) -> None:
        self.servers = servers
        self._lock = threading.Lock()
        #: Clients whose link is down now, with why.
        self._down: dict[str, str] = {}
        self._lost_at: Optional[float] = None
        #: Whether any client ever had a broker connection up; until then a failure is no
        #: *loss* (the caller gets its error) and is logged at INFO only.
        self._ever_up = False
        self._lost_level = logging.WARNING
        #: Clients whose statistics can tell the link is back (an admin client has none:
        #: its loss ends when any other client is connected again).
        self._reporting: set[str] = set()
        #: How many times the link was lost and came back (for tests).
        self.losses = 0
        self.restores = 0

    @property
    def up(self) -> bool:
        with self._lock:
            return not self._down

    # ------------------------------------------------------------------ callbacks
    def error_cb(self, client: str, on_other: Callable[[Any], None]) -> Callable[[Any], None]:
        """An ``error_cb`` for ``client``: connection errors become link state, the rest
        goes to ``on_other``."""

        def callback(err: Any) -> None:
            code = err.code()
            if code == KafkaError._ALL_BROKERS_DOWN:
                self.lost(client, err.str())
            elif code in CONNECTION_ERRORS and not err.fatal():
                logger.debug("Kafka %s: %s", client, err.str())
            else:
                on_other(err)

        return callback

    def stats_cb(self, client: str) -> Callable[[str], None]:
        """A ``stats_cb`` for ``client``: a broker connection ``UP`` means the link is back."""
        with self._lock:
            self._reporting.add(client)

        def callback(stats: str) -> None:
            with self._lock:
                if client not in self._down and self._ever_up:
                    return  # the common case: nothing to parse
            try:
                brokers = json.loads(stats).get("brokers", {})
            except ValueError:
                return
            if any(b.get("state") == "UP" for b in brokers.values()):
                self._ever_up = True
                self.back(client)

        return callback

    def connected(self) -> None:
        """A client proved a broker connection up (a consumer was assigned partitions):
        from now on a failure is a *loss*, even before any statistics came."""
        with self._lock:
            self._ever_up = True

    def log_sink(self, client: str) -> _LogSink:
        """The ``logger`` for ``client``'s librdkafka log lines."""
        return _LogSink(self, client)

    # ------------------------------------------------------------------ state
    def lost(self, client: str, reason: str) -> None:
        with self._lock:
            first = not self._down
            self._down.setdefault(client, reason)
            if first:
                self._lost_at = time.monotonic()
                self.losses += 1
                self._lost_level = logging.WARNING if self._ever_up else logging.INFO
        if first:
            logger.log(self._lost_level, "%s Kafka at %s (%s); retrying",
                       "lost the connection to" if self._ever_up else "cannot reach", self.servers,
                       reason)

    def back(self, client: str) -> None:
        with self._lock:
            if self._down.pop(client, None) is None:
                return
            for silent in [c for c in self._down if c not in self._reporting]:
                del self._down[silent]
            if self._down:
                return
            since, self._lost_at = self._lost_at, None
            self.restores += 1
        logger.log(self._lost_level, "connection to Kafka at %s restored after %.1f s", self.servers,
                   time.monotonic() - (since or time.monotonic()))

    def forget(self, client: str) -> None:
        """A client was closed: its state no longer counts (and nothing is logged)."""
        with self._lock:
            self._down.pop(client, None)
            if not self._down:
                self._lost_at = None


class _LogSink:
    """What librdkafka's ``logger`` setting calls (``log(level, fmt, *args)``): per-attempt
    connection failures go to DEBUG, everything else to ``yadtq.transports.kafka.librdkafka``."""

    def __init__(self, link: KafkaLink, client: str) -> None:
        self.link = link
        self.client = client

    def log(self, level: int, fmt: str, *args: Any) -> None:
        # confluent-kafka already maps librdkafka's syslog levels to logging's.
        if args and str(args[0]) in NOISY_FACILITIES:
            level = logging.DEBUG
        if rdkafka_logger.isEnabledFor(level):
            rdkafka_logger.log(level, fmt, *args)
