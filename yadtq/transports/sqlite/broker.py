"""``SqliteBroker`` and its consumer: messages leased from the ``yadtq_messages`` table."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from ...envelope import HEADER_ID, peek_task_id
from ...exceptions import BrokerUnavailable
from ...namespace import Naming
from ...priority import priority_of
from ..base import (
    Broker,
    Consumer,
    DeadLetter,
    Delivery,
    DrainCallback,
    Message,
)
from .notify import NOTIFY_ALL, Notifier
from .schema import (
    BROKER_SCHEMA,
    DEAD_LETTER_CAP,
    MAX_POLL_DELAY,
    MIN_POLL_DELAY,
    _busy_timeout,
    _Database,
    _pack_headers,
    _unpack_headers,
    database_path,
    upgrade_broker,
)

if TYPE_CHECKING:
    from ...settings import Settings

logger = logging.getLogger(__name__)

#: What a publish tells waiting consumers: look at every queue.
_NOTIFY_ALL = [NOTIFY_ALL.decode()]

#: Longest an idle consumer waits on its notification socket before re-reading the
#: table anyway (a datagram can be lost when a socket's queue is full).
NOTIFY_RECHECK = 1.0

_SELECT_EXPIRED = (
    "SELECT id, queue, body, key, headers, priority FROM yadtq_messages"
    " WHERE queue = ? AND visible_after > 0 AND visible_after <= ? ORDER BY priority DESC, id LIMIT ?"
)
_SELECT_WAITING = (
    "SELECT id, queue, body, key, headers, priority FROM yadtq_messages"
    " WHERE queue = ? AND visible_after = 0 ORDER BY priority DESC, id LIMIT ?"
)
_INSERT = "INSERT INTO yadtq_messages (queue, body, key, headers, priority) VALUES (?, ?, ?, ?, ?)"

#: The distinct queues of the messages, by skipping along the (queue, ...) index.
_SELECT_QUEUES = (
    "WITH RECURSIVE found(name) AS ("
    " SELECT MIN(queue) FROM yadtq_messages"
    " UNION ALL SELECT (SELECT MIN(queue) FROM yadtq_messages WHERE queue > found.name)"
    " FROM found WHERE found.name IS NOT NULL)"
    " SELECT name FROM found WHERE name IS NOT NULL"
)

_SELECT_LEASED = (
    "SELECT body, headers, visible_after FROM yadtq_messages WHERE queue = ? AND visible_after > 0"
)


class SqliteBroker(Broker):
    """Queues as rows of one table, leased to the consumer that takes them."""

    scheme = "sqlite"

    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        self.path = database_path(url)
        naming = Naming.of(settings)
        self._db = _Database(self.path, BROKER_SCHEMA, BrokerUnavailable,
                             _busy_timeout(settings.broker_options), naming, upgrade_broker)
        #: Wakes idle consumers in any process when messages arrive (Unix datagrams in
        #: ``<db>-queue.notify/``, ``<db>-<namespace>-queue.notify/`` for a namespace but
        #: the default), so they block instead of polling the table.
        self._notifier = Notifier(self.path + ("" if naming.is_default else f"-{naming.namespace}")
                                  + "-queue")

    def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        rows = [(m.queue, m.body, m.key, _pack_headers(m.headers), priority_of(m.headers))
                for m in messages]
        with self._db.transaction(prompt=True) as conn:
            conn.executemany(_INSERT, rows)
        self._notifier.notify(_NOTIFY_ALL)

    def publish_plain(self, queue: str, rows: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
        """:meth:`publish` for messages of one queue at the default priority, in one transaction."""
        if not rows:
            return
        values = [(queue, body, key, _pack_headers(headers), 0) for body, key, headers in rows]
        with self._db.transaction(prompt=True) as conn:
            if len(values) == 1:
                conn.execute(_INSERT, values[0])
            else:
                conn.executemany(_INSERT, values)
        self._notifier.notify(_NOTIFY_ALL)

    def consumer(self, queues: Sequence[str], *, on_drain: Optional[DrainCallback] = None,
                 worker: Optional[str] = None) -> Consumer:
        # No rebalances here: a consumer keeps its leases until done or closed.
        return SqliteConsumer(self, list(queues))

    def purge(self, queue: str) -> int:
        """Drop the waiting messages of ``queue``; those leased to a consumer stay."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM yadtq_messages WHERE queue = ? AND visible_after <= ?",
                (queue, time.time()))
            return cursor.rowcount

    def depth(self, queue: str) -> Optional[int]:
        """Messages of ``queue`` not yet done, leased ones included (like Kafka's lag)."""
        with self._db.reading() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM yadtq_messages WHERE queue = ?", (queue,)).fetchone()
            return int(count)

    def depth_by_priority(self, queue: str) -> Optional[dict[str, int]]:
        """Messages of ``queue`` not yet done, per priority level."""
        with self._db.reading() as conn:
            rows = conn.execute("SELECT priority, COUNT(*) FROM yadtq_messages WHERE queue = ?"
                                " GROUP BY priority ORDER BY priority", (queue,)).fetchall()
        return {str(level): int(count) for level, count in rows}

    def queues_with_tasks(self) -> list[str]:
        """Every queue with a message (one index seek per queue, never a scan of the table)."""
        with self._db.reading() as conn:
            return [name for (name,) in conn.execute(_SELECT_QUEUES)]

    def leases(self) -> dict[str, float]:
        """The leased messages' tasks and lease ends (an index range per queue: the leased
        rows only, however many wait)."""
        found: dict[str, float] = {}
        with self._db.reading() as conn:
            queues = [name for (name,) in conn.execute(_SELECT_QUEUES)]
            for queue in queues:
                for body, headers, until in conn.execute(_SELECT_LEASED, (queue,)):
                    raw = _unpack_headers(headers).get(HEADER_ID)
                    task_id = raw.decode("utf-8", "replace") if raw else peek_task_id(body)
                    if task_id:
                        found[task_id] = max(until, found.get(task_id, 0.0))
        return found

    def dead_letter_message(self, message: Message, reason: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO yadtq_dead_letters (queue, body, key, headers, reason, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message.queue, message.body, message.key, _pack_headers(message.headers),
                 reason, time.time()))

    def dead_letters(self, limit: int = 100) -> list[Delivery]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT id, queue, body, key, headers FROM yadtq_dead_letters"
                " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Delivery(body=body, queue=queue, headers=_unpack_headers(headers), key=key,
                         token=row_id) for row_id, queue, body, key, headers in reversed(rows)]

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT id, queue, reason, created, body, headers, key FROM yadtq_dead_letters"
                " ORDER BY id DESC LIMIT ?", (max(limit, 0),)).fetchall()
        return [_dead_letter(row) for row in reversed(rows)]

    def requeue_dead_letters(self, ids: Optional[Sequence[str]] = None) -> list[DeadLetter]:
        """Move dead letters back to their queues in one transaction (both tables are here)."""
        with self._db.transaction() as conn:
            if ids is None:
                rows = conn.execute("SELECT id, queue, reason, created, body, headers, key"
                                    " FROM yadtq_dead_letters ORDER BY id").fetchall()
            else:
                numbers = [int(i) for i in ids if i.isdigit()]
                rows = []
                for number in numbers:
                    rows += conn.execute("SELECT id, queue, reason, created, body, headers, key"
                                         " FROM yadtq_dead_letters WHERE id = ?", (number,)).fetchall()
            letters = [_dead_letter(row) for row in rows]
            conn.executemany(_INSERT, [(d.queue, d.body, d.key, _pack_headers(d.headers),
                                        priority_of(d.headers)) for d in letters])
            conn.executemany("DELETE FROM yadtq_dead_letters WHERE id = ?", [(row[0],) for row in rows])
        return letters

    def purge_dead_letters(self) -> int:
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM yadtq_dead_letters").rowcount

    def peek(self, queue: str) -> Optional[Delivery]:
        """The oldest message of ``queue`` not leased to a consumer (one index lookup)."""
        with self._db.reading() as conn:
            row = conn.execute(_SELECT_WAITING, (queue, 1)).fetchone()
        if row is None:
            return None
        row_id, queue, body, key, headers, _ = row
        return Delivery(body=body, queue=queue, headers=_unpack_headers(headers), key=key, token=row_id)

    def close(self) -> None:
        self._notifier.close()
        self._db.close()


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    row_id, queue, reason, created, body, headers, key = row
    return DeadLetter(str(row_id), queue, reason, created, body, _unpack_headers(headers), key)


class SqliteConsumer(Consumer):
    """Leases rows of its queues; renews the leases of outstanding deliveries."""

    def __init__(self, broker: SqliteBroker, queues: list[str]) -> None:
        self._db = broker._db
        self._queues = queues
        self._visibility = broker.settings.visibility_timeout
        self._name = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._outstanding: dict[int, Delivery] = {}
        self._renewed = time.time()
        self._listener = broker._notifier.listen()  # None: poll the table instead
        # Closes the listener once: at close(), or when a consumer dropped without it is collected.
        self._release = weakref.finalize(self, self._listener.close) if self._listener else None

    def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        self._renew_leases()
        if max_items <= 0:
            return []
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = MIN_POLL_DELAY
        listener = self._listener
        if listener is not None:
            listener.drain()  # before reading the table: what they announced is read below
        version = self._data_version()
        while True:
            visible_at = self._next_visible()
            if visible_at <= time.time():
                taken = self._take(max_items)
                if taken:
                    return taken
            # Nothing visible: wait until another connection writes or a lease runs out.
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if listener is not None:
                    listener.wait_for(NOTIFY_ALL, min(remaining, NOTIFY_RECHECK,
                                                      max(visible_at - time.time(), 0.001)))
                else:
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, MAX_POLL_DELAY)
                current = self._data_version()
                if current != version or time.time() >= visible_at:
                    version = current
                    break

    def _data_version(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def _next_visible(self) -> float:
        """When the first message of our queues is (or becomes) visible; ``inf``: none."""
        earliest = float("inf")
        with self._db.reading() as conn:
            for queue in self._queues:
                (first,) = conn.execute(
                    "SELECT MIN(visible_after) FROM yadtq_messages WHERE queue = ?",
                    (queue,)).fetchone()
                if first is not None and first < earliest:
                    earliest = first
        return earliest

    def _take(self, max_items: int) -> list[Delivery]:
        """Lease the oldest visible messages in one transaction: each goes to one consumer."""
        now = time.time()
        with self._db.transaction() as conn:
            rows: list[tuple[int, str, bytes, Optional[bytes], Optional[bytes], int]] = []
            for queue in self._queues:
                rows += conn.execute(_SELECT_EXPIRED, (queue, now, max_items)).fetchall()
                rows += conn.execute(_SELECT_WAITING, (queue, max_items)).fetchall()
            if not rows:
                return []
            rows.sort(key=lambda row: (-row[5], row[0]))  # highest priority, then oldest
            del rows[max_items:]
            lease = now + self._visibility
            conn.executemany(
                "UPDATE yadtq_messages SET visible_after = ?, consumer = ? WHERE id = ?",
                [(lease, self._name, row[0]) for row in rows])
        taken = [Delivery(body=body, queue=queue, headers=_unpack_headers(headers), key=key,
                          token=row_id) for row_id, queue, body, key, headers, _ in rows]
        with self._lock:
            for delivery in taken:
                self._outstanding[delivery.token] = delivery
        return taken

    def _renew_leases(self) -> None:
        """Keep outstanding deliveries leased while this consumer lives."""
        now = time.time()
        if now - self._renewed < self._visibility / 3:
            return
        self._renewed = now
        with self._lock:
            ids = list(self._outstanding)
        if not ids:
            return
        lease = now + self._visibility
        with self._db.transaction() as conn:
            cursor = conn.executemany(
                "UPDATE yadtq_messages SET visible_after = ? WHERE id = ? AND consumer = ?",
                [(lease, row_id, self._name) for row_id in ids])
            renewed = cursor.rowcount
        if 0 <= renewed < len(ids):
            logger.warning("%d of %d sqlite leases ran out before renewal; those messages may "
                           "be delivered again", len(ids) - renewed, len(ids))

    def done(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM yadtq_messages WHERE id = ?",
                             [(d.token,) for d in deliveries])
        with self._lock:
            for delivery in deliveries:
                self._outstanding.pop(delivery.token, None)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO yadtq_dead_letters (queue, body, key, headers, reason, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (delivery.queue, delivery.body, delivery.key, _pack_headers(delivery.headers),
                 reason, time.time()))
            conn.execute("DELETE FROM yadtq_messages WHERE id = ?", (delivery.token,))
            conn.execute(
                "DELETE FROM yadtq_dead_letters"
                " WHERE id <= (SELECT MAX(id) FROM yadtq_dead_letters) - ?", (DEAD_LETTER_CAP,))
        with self._lock:
            self._outstanding.pop(delivery.token, None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def close(self) -> None:
        """Hand back the leases of unfinished deliveries, so another worker takes them now."""
        if self._release is not None:
            self._listener = None
            self._release()
        with self._lock:
            ids = list(self._outstanding)
            self._outstanding.clear()
        if not ids:
            return
        try:
            with self._db.transaction() as conn:
                conn.executemany(
                    "UPDATE yadtq_messages SET visible_after = 0, consumer = NULL"
                    " WHERE id = ? AND consumer = ?", [(row_id, self._name) for row_id in ids])
        except BrokerUnavailable as exc:
            logger.warning("could not hand back %d sqlite leases (they run out in %.0f s): %s",
                           len(ids), self._visibility, exc)


