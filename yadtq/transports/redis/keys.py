"""Every Redis key name of the backend, in one place (each after ``{prefix}:``, the
app's namespace unless ``backend_options`` set ``prefix``).

Names ending in ``:`` are followed by an id. The Lua scripts get every key name
from the Python side, so this module is the only place they are spelled.
"""

from __future__ import annotations

TASK_KEY = "task:"  # hash: the task record
REVOKED_KEY = "revoked:"  # string: revoke timestamp; TTL result_expires
WAITERS_KEY = "waiters:"  # set: inbox channels of processes waiting on the task
DEDUPE_KEY = "dedupe:"  # string: the task id that holds the dedupe key; TTL given
INBOX_CHANNEL = "inbox:"  # pub/sub channel of one backend instance; messages are task ids
#: An inbox channel whose name ends with this takes each ready record with its id
#: (``notify`` in ``scripts/common.lua``; ``inbox.py``): the waiter needs no read after.
RECORD_INBOX_SUFFIX = ".r"
#: Records longer than this, packed, are announced by id alone (a read follows).
RECORD_INBOX_MAX_BYTES = 65536
SCHEDULE_KEY = "schedule"  # sorted set: packed entry -> due
LEASED_KEY = "schedule:leased"  # sorted set: packed entry -> lease deadline
WORKERS_KEY = "workers"  # hash: worker name -> packed WorkerInfo
WORKER_INSTANCE_KEY = "workers:instance"  # hash: worker name -> its current instance
INSTANCES_KEY = "instances"  # hash: instance of a running worker -> last heard (Redis clock)
WORKERS_SEEN_KEY = "workers:seen"  # sorted set: worker name -> last heard (Redis clock)
WORKERS_RUNNING_KEY = "workers:running"  # sorted set: name of a running worker -> last heard
WATCH_KEY = "watch"  # hash: since, last (records.Watch, on the Redis clock)
FAILURES_KEY = "failures"  # list: packed worker failures, newest first
STATS_KEY = "stats"  # hash: succeeded, failed, retried, revoked, dead_lettered totals
PROCESSING_KEY = "processing"  # sorted set: id of a task processing -> when it started
RETRYING_KEY = "retrying"  # sorted set: id of a task retrying -> when its attempt failed
#: The member that keeps each of those two indexes a skiplist (scored +inf; no task):
#: longer than ``zset-max-listpack-value``, so Redis never stores them as a listpack, whose
#: every insertion copies the whole set (``INDEX_KEEPER`` in ``scripts/common.lua``).
INDEX_KEEPER = ("yadtq: this entry keeps the index a skiplist, not a listpack, "
                "whose every insertion copies the whole set (see transports/redis/keys.py)")
RECENT_SUCCESS_KEY = "recent:success"  # list: packed latest successes, newest first
RECENT_FAILED_KEY = "recent:failed"  # list: packed latest failures, newest first
PROGRESS_KEY = "progress:"  # string: packed [retries, state, meta, timestamp]; TTL result_expires
EVENTS_KEY = "events"  # stream: one entry per state change (id, name, state, worker, ts); option ``events``
EVENTS_MAXLEN = 10_000
# Periodic schedules (transports/redis/periodic.py, scripts/periodic.lua)
PERIODIC_KEY = "periodic:entry:"  # hash: spec, next_run, paused, last_run, last_task_id
PERIODIC_NAMES_KEY = "periodic:names"  # sorted set: every schedule's name (score 0)
PERIODIC_DUE_KEY = "periodic:due"  # sorted set: name of a schedule not paused -> next_run
# Canvas (canvas.py): groups and chords.
GROUP_KEY = "group:"  # hash: a stored group: members, and for a chord its callback and count
CHORD_DONE_KEY = "chord:done:"  # set: indexes of a chord's members counted successful
OPEN_CHORDS_KEY = "chords"  # sorted set: open chord id -> created
# Flow control (limits.py).
RATE_KEY = "rate:"  # sorted set per task name: attempt -> start time or reservation
# Concurrency slots (slots.py, scripts/slots.lua), per limit key (task name, key value).
SLOT_KEYS_KEY = "slots:keys"  # hash: limit key -> msgpack [task name, key value, limit]
SLOT_SWEEP_KEY = "slots:sweep"  # sorted set: limit key with waiting tasks -> last settled
SLOT_SEQ_KEY = "slots:seq"  # counter: arrival numbers of waiting tasks
SLOT_HELD_KEY = "slots:held:"  # hash per limit key: attempt -> msgpack [instance, since]
SLOT_QUEUE_KEY = "slots:queue:"  # sorted set per limit key: waiting attempt -> arrival number
SLOT_MESSAGES_KEY = "slots:messages:"  # hash per limit key: waiting attempt -> msgpack [head, tail]

__all__ = [
    "CHORD_DONE_KEY",
    "DEDUPE_KEY",
    "EVENTS_KEY",
    "EVENTS_MAXLEN",
    "FAILURES_KEY",
    "GROUP_KEY",
    "INBOX_CHANNEL",
    "INDEX_KEEPER",
    "INSTANCES_KEY",
    "LEASED_KEY",
    "OPEN_CHORDS_KEY",
    "PROCESSING_KEY",
    "RATE_KEY",
    "RECENT_FAILED_KEY",
    "RECENT_SUCCESS_KEY",
    "RECORD_INBOX_MAX_BYTES",
    "RECORD_INBOX_SUFFIX",
    "RETRYING_KEY",
    "REVOKED_KEY",
    "SCHEDULE_KEY",
    "SLOT_HELD_KEY",
    "SLOT_KEYS_KEY",
    "SLOT_MESSAGES_KEY",
    "SLOT_QUEUE_KEY",
    "SLOT_SEQ_KEY",
    "SLOT_SWEEP_KEY",
    "STATS_KEY",
    "TASK_KEY",
    "WAITERS_KEY",
    "WATCH_KEY",
    "WORKERS_KEY",
    "WORKERS_RUNNING_KEY",
    "WORKERS_SEEN_KEY",
    "WORKER_INSTANCE_KEY",
]
