"""``sqlite://``: the embedded default transport, a broker and a backend in one file.

Several processes on one machine share the database (worker processes take
messages, client processes publish and wait for results); no server is needed.
``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` name the file;
broker and backend may share it (separate tables, created on first use), and so
may apps with different ``namespace`` settings: the default namespace's tables are
``yadtq_<table>``, another's ``"<namespace>:<table>"`` (``schema._Database``). The
database runs in WAL mode with ``synchronous=NORMAL``; every write is one
``BEGIN IMMEDIATE`` transaction, which is what makes each step atomic across
processes. Each thread gets its own connection. The write-ahead log is copied
back into the database by a thread of each writing process a moment after its
writes (``checkpoint.py``), not inside a commit; a commit checkpoints only once
the log passes 10,000 pages (about 40 MB), which also lets the log start over.

Broker. ``yadtq_messages`` holds one row per message. ``visible_after = 0``
means waiting; otherwise the row is leased to the consumer it names until that
time. A consumer claims the visible rows of its queues in one transaction, highest
``priority`` first and oldest first within a level (an index on ``(queue,
visible_after, priority DESC, id)``; a file made before priorities gets the column
and the index when a broker first opens it),
by leasing them for ``visibility_timeout`` seconds, so a message runs on one
worker at a time. While deliveries are outstanding the consumer renews their
leases on its ``fetch`` calls (at most every third of the timeout); if its
worker dies, the leases run out and the rows are claimed again (at-least-once),
and ``close`` hands leases back at once. ``done`` deletes the rows. An idle
consumer never spins: it sleeps with a backoff (2 ms doubling to 50 ms) and only
queries again when ``PRAGMA data_version`` shows another connection wrote, or
when a lease it saw runs out.

Backend. Each task record is a msgpack blob keyed by task id, with its state,
update time and expiry time as columns; ``records.py`` decides every change.
Expired rows read as absent and are purged in small batches every few seconds.
For the monitor, an index on ``(state, updated)`` lists the tasks processing or
retrying and the latest successes and failures at a cost set by what is listed,
and ``yadtq_totals`` keeps counters of the states entered, updated in the same
transaction as the records.

Waking waiters. ``wait`` binds a Unix datagram socket in a directory beside the
database (``<db>.notify/<pid>-<random>.sock``, or a directory under ``/tmp``
named by a hash of the database path when that would be too long for a socket
address). A writer that commits a change making tasks ready sends their ids
(``*`` for a big batch) to every socket there, and removes sockets nobody
listens on any more (their waiter was killed). It lists the directory again only
when the directory changed (its mtime; a listing taken within 50 ms of that
mtime, or within a second where the file system stamps whole seconds, is not
trusted, and none is kept longer than a second). The waiter reads the record
before binding, again right after binding (so a change committed in between is
not missed) and whenever a datagram names its task. A lost datagram costs only
latency: the waiter also re-reads every ``wait_recheck`` seconds. Where Unix
sockets are unavailable, ``wait`` polls.

Options (``broker_options`` / ``backend_options``): ``busy_timeout`` (seconds a
connection waits for the write lock, default 30); backend only: ``wait_recheck``
(seconds between fallback re-reads in ``wait``, default 1).

Needs SQLite 3.24 or newer (upsert).
"""


from __future__ import annotations

from .backend import SqliteBackend
from .broker import SqliteBroker
from .schema import database_path

__all__ = ["SqliteBackend", "SqliteBroker", "database_path"]
