"""``redis://`` and ``rediss://``: the production result backend.

URL: ``redis://[[user]:password@]host[:port][/db]``; ``rediss://`` for TLS.
``backend_options`` go to ``redis.Redis.from_url`` unchanged, except ``prefix``
(default: the app's ``namespace``, ``"yadtq"`` unless set), which starts every key
name below, ``slot_groups`` (Redis Cluster) and ``events`` (``True`` keeps the capped
stream ``{prefix}:events``, one entry per state change, for tools of your own; off by
default, as nothing in yadtq reads it and it is two writes a task).
``socket_timeout`` defaults to 10 s and ``socket_connect_timeout`` to 5 s (a Redis
that stops answering raises ``BackendUnavailable`` instead of hanging; ``None``
restores no timeout).

Every method is one round trip. Whatever must be atomic runs as a Lua script
from ``scripts/`` (``common.lua`` is prepended to each); the scripts mirror the
rules of ``records.py`` and the behaviour of ``memory.py``.

A task record is one hash, ``{prefix}:task:{id}``, with the fields ``state``,
``name``, ``queue``, ``result`` (the packed return value), ``error`` (packed
``[type, message, args, traceback]``), ``retries``, ``worker``, ``instance``,
``eta``, ``history`` (msgpack arrays ``[state, timestamp, worker]``
concatenated, oldest first: appending needs no decoding in Lua), ``claim``
(the token of the granted claim, so a replayed claim script sees its own
grant) and ``started`` (when it last entered ``processing``, for runtimes).
Every write sets its TTL to ``result_expires``.

Waking waiters: each backend instance has one inbox, a pub/sub channel
``{prefix}:inbox:{random}.r`` with one listener thread. ``wait`` reads the record
and, in the same script, adds its inbox to the set ``{prefix}:waiters:{id}``;
the script that makes the task ready publishes to every inbox in that set the
id and the ready record, packed ``[id, HGETALL pairs]`` (``keys.RECORD_INBOX_SUFFIX``
marks the channels that take it), so the waiter returns without reading it;
a record longer than ``keys.RECORD_INBOX_MAX_BYTES`` packed, and channels without
the suffix (clients of earlier versions, asyncio waiters), get the id alone and
read the record. So a notification goes only to processes waiting on that task
(no fan-out of every completion to every client), a wait costs one round trip and
no SUBSCRIBE per call, and any number of waiting threads share one connection.

Monitoring (``snapshot``) reads only indexes and counters that the scripts keep in
the same step as each state change: the sorted sets ``processing`` and
``retrying`` (task id -> when it entered the state; each keeps one more member,
``keys.INDEX_KEEPER``, so Redis stores it as a skiplist), the capped lists
``recent:success`` and ``recent:failed`` and the ``stats`` hash. A refresh costs
the same however many results are stored.
"""

from __future__ import annotations

from . import keys
from .backend import RedisBackend
from .keys import *  # noqa: F403 - the key names, for tests and tools

__all__ = ["RedisBackend", *keys.__all__]
