"""The Redis backend's waiting (pub/sub inboxes, carried records) and worker registry."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import msgpack
import pytest
import redis

import yadtq.transports.redis
from yadtq.transports.base import (
    ErrorInfo,
    StateChange,
    TaskRecord,
    WorkerInfo,
)
from yadtq.transports.records import PRUNE_BATCH
from yadtq.transports.redis import (
    INSTANCES_KEY,
    RECORD_INBOX_MAX_BYTES,
    RECORD_INBOX_SUFFIX,
    TASK_KEY,
    WAITERS_KEY,
    WORKER_INSTANCE_KEY,
    WORKERS_KEY,
    WORKERS_SEEN_KEY,
    RedisBackend,
)

from .support import DEADLINE, success_change, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.integration]


# --------------------------------------------------------------------------- wait


def test_wait_is_woken_by_a_record_from_another_thread(backend: RedisBackend, client: redis.Redis) -> None:
    woken: dict[str, Any] = {}

    def waiter() -> None:
        woken["record"] = backend.wait("t", timeout=DEADLINE)
        woken["at"] = time.monotonic()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_for(lambda: client.exists(backend.key(WAITERS_KEY, "t")))  # the waiter is registered
    recorded_at = time.monotonic()
    backend.record([success_change("t")])
    thread.join(DEADLINE)
    assert not thread.is_alive()
    record = woken["record"]
    assert record is not None and record.state == "success" and record.result == b"\x05"
    assert woken["at"] - recorded_at < 0.5  # woken by the notification, far before the timeout
    assert client.exists(backend.key(WAITERS_KEY, "t")) == 0  # the registration is spent


def test_wait_returns_a_ready_record_at_once_and_none_on_timeout(backend: RedisBackend) -> None:
    backend.record([success_change("done")])
    started = time.monotonic()
    record = backend.wait("done", timeout=DEADLINE)
    assert record is not None and record.state == "success"
    assert time.monotonic() - started < 1.0
    backend.record([StateChange("pending", "processing", time.time())])
    started = time.monotonic()
    assert backend.wait("pending", timeout=0.3) is None
    assert 0.3 <= time.monotonic() - started < 2.0


def test_many_waiting_threads_share_one_connection_and_all_wake(backend: RedisBackend,
                                                                client: redis.Redis) -> None:
    def pubsub_ids() -> set[int]:
        return {int(c["id"]) for c in client.client_list(_type="pubsub")}

    before = pubsub_ids()
    ids = [f"t{i}" for i in range(40)]
    results: dict[str, Optional[TaskRecord]] = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, backend.wait(t, DEADLINE)))
               for t in ids]
    for t in threads:
        t.start()
    wait_for(lambda: all(client.exists(backend.key(WAITERS_KEY, t)) for t in ids))
    assert len(pubsub_ids() - before) == 1
    backend.record([success_change(t) for t in ids[:20]])
    backend.revoke(ids[20:], time.time())
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    assert {t: r.state if r else None for t, r in results.items()} == {
        **{t: "success" for t in ids[:20]}, **{t: "revoked" for t in ids[20:]}}


def test_wait_survives_its_pubsub_connection_being_killed(backend: RedisBackend,
                                                          client: redis.Redis) -> None:
    def pubsub_ids() -> set[int]:
        return {int(c["id"]) for c in client.client_list(_type="pubsub")}

    before = pubsub_ids()
    backend.record([success_change("warm")])
    assert backend.wait("warm", DEADLINE) is not None  # opens the inbox
    ours = pubsub_ids() - before
    assert len(ours) == 1
    result: dict[str, Optional[TaskRecord]] = {}
    thread = threading.Thread(target=lambda: result.__setitem__("r", backend.wait("t", DEADLINE)))
    thread.start()
    wait_for(lambda: client.exists(backend.key(WAITERS_KEY, "t")))
    client.client_kill_filter(_id=str(ours.pop()))
    wait_for(lambda: len(pubsub_ids() - before) == 1)  # resubscribed on a new connection
    backend.record([success_change("t")])
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert result["r"] is not None and result["r"].state == "success"



def _waiting(backend: RedisBackend, client: redis.Redis, task_id: str,
             watches: list[str]) -> tuple[threading.Thread, dict[str, Optional[TaskRecord]]]:
    """A thread waiting on ``task_id``, registered; ``watches`` collects its reads."""
    result: dict[str, Optional[TaskRecord]] = {}
    thread = threading.Thread(target=lambda: result.__setitem__("r", backend.wait(task_id, DEADLINE)))
    thread.start()
    wait_for(lambda: client.exists(backend.key(WAITERS_KEY, task_id)))
    assert watches == [task_id]
    return thread, result


@pytest.fixture
def watches(backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The task ids of the backend's ``watch`` reads (a read and a registration each)."""
    seen: list[str] = []
    real = backend._watch

    def counted(task_id: str, channel: str) -> Optional[TaskRecord]:
        seen.append(task_id)
        return real(task_id, channel)

    monkeypatch.setattr(backend, "_watch", counted)
    return seen


def test_the_notification_brings_the_ready_record(backend: RedisBackend, client: redis.Redis,
                                                  watches: list[str]) -> None:
    thread, result = _waiting(backend, client, "t", watches)
    backend.record([success_change("t")])
    thread.join(DEADLINE)
    record = result["r"]
    assert record is not None and (record.state, record.result, record.worker) == ("success", b"\x05", "w1")
    assert watches == ["t"]  # no read after the notification


@pytest.mark.parametrize("announce", ["id alone (an older worker)", "a result too long to carry",
                                      "an error too long to carry"])
def test_a_notification_without_the_record_makes_the_waiter_read_it(
        backend: RedisBackend, client: redis.Redis, watches: list[str], announce: str) -> None:
    thread, result = _waiting(backend, client, "t", watches)
    if announce.startswith("id alone"):
        client.hset(backend.key(TASK_KEY, "t"), mapping={"state": "success", "result": b"\x05"})
        (channel,) = client.smembers(backend.key(WAITERS_KEY, "t"))
        client.publish(channel, "t")
    elif announce.startswith("a result"):
        big = b"x" * (RECORD_INBOX_MAX_BYTES + 1)
        backend.record([dataclasses.replace(success_change("t"), result=big)])
    else:
        error = ErrorInfo("ValueError", "boom", ["boom"], "x" * RECORD_INBOX_MAX_BYTES)
        backend.record([StateChange("t", "failed", time.time(), worker="w1", error=error)])
    thread.join(DEADLINE)
    record = result["r"]
    assert record is not None and record.state in ("success", "failed")
    assert watches == ["t", "t"]  # registered, then read once woken


def test_the_waiter_takes_only_its_own_task_and_survives_foreign_messages(
        backend: RedisBackend, client: redis.Redis, watches: list[str]) -> None:
    thread, result = _waiting(backend, client, "t", watches)
    (channel,) = client.smembers(backend.key(WAITERS_KEY, "t"))
    client.publish(channel, b"\x92\xc1 not msgpack")
    client.publish(channel, msgpack.packb([b"other", [b"state", b"success"]]))
    time.sleep(0.2)
    assert thread.is_alive() and watches == ["t"]
    backend.record([success_change("t")])
    thread.join(DEADLINE)
    assert result["r"] is not None and result["r"].state == "success"


def test_the_lua_and_python_sides_agree_on_carried_records() -> None:
    common = (Path(yadtq.transports.redis.__file__).parent / "scripts" / "common.lua").read_text()
    assert f"local RECORD_INBOX = '{RECORD_INBOX_SUFFIX}'" in common
    assert f"local RECORD_INBOX_MAX = {RECORD_INBOX_MAX_BYTES}" in common

# --------------------------------------------------------------------------- workers


def test_heartbeat_stores_the_report_and_instance_liveness(backend: RedisBackend,
                                                           client: redis.Redis) -> None:
    info = WorkerInfo("w1", "i1", hostname="h", pid=42, queues=("a", "b"), concurrency=4, pool="threads",
                      started=1.0, last_heartbeat=2.5, tasks_done=7, extra={"rss": 1024})
    backend.heartbeat(info)
    (stored,) = backend.workers()
    # Stamped with Redis's clock (TIME), whatever the worker's clock said.
    heard = float(client.hget(backend.key(INSTANCES_KEY), "i1") or 0)
    assert abs(heard - backend.time()) < 5 and stored.last_heartbeat == pytest.approx(heard)
    assert dataclasses.replace(stored, last_heartbeat=2.5, silent=0.0) == info
    assert client.zscore(backend.key(WORKERS_SEEN_KEY), "w1") == pytest.approx(heard)
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=3.0, state="stopped"))
    assert client.hget(backend.key(INSTANCES_KEY), "i1") is None
    assert [w.state for w in backend.workers()] == ["stopped"]


def test_pruning_costs_a_bounded_batch_per_heartbeat(make_backend: Callable[..., RedisBackend],
                                                     client: redis.Redis) -> None:
    backend = make_backend(worker_retention=3600.0)
    old = backend.time() - 7200
    # Workers last heard two hours ago (as an old deployment would have left them).
    for n in range(PRUNE_BATCH + 20):
        client.hset(backend.key(WORKERS_KEY), f"old{n}", b"\x80")
        client.hset(backend.key(WORKER_INSTANCE_KEY), f"old{n}", f"i-old{n}")
        client.hset(backend.key(INSTANCES_KEY), f"i-old{n}", old)
        client.zadd(backend.key(WORKERS_SEEN_KEY), {f"old{n}": old})
    backend.heartbeat(WorkerInfo("w1", "i1"))
    assert client.zcard(backend.key(WORKERS_SEEN_KEY)) == 21  # w1, and 20 left for later
    backend.heartbeat(WorkerInfo("w1", "i1"))
    assert client.zrange(backend.key(WORKERS_SEEN_KEY), 0, -1) == [b"w1"]
    assert client.hkeys(backend.key(INSTANCES_KEY)) == [b"i1"]
    assert client.hkeys(backend.key(WORKER_INSTANCE_KEY)) == [b"w1"]
    assert client.hkeys(backend.key(WORKERS_KEY)) == [b"w1"]
