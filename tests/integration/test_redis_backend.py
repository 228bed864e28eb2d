"""What is particular to the Redis backend: Lua atomicity, notification, leases, TTLs, round trips.

The behaviour every backend shares is held to ``memory.py`` by ``tests/contract``.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import msgpack
import pytest
import redis

import yadtq.transports.redis
from yadtq.exceptions import BackendUnavailable, ConfigurationError
from yadtq.settings import Settings
from yadtq.transports.base import (
    BUSY,
    REVOKED,
    RUN,
    SKIP,
    Claim,
    ErrorInfo,
    Message,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    WorkerInfo,
    create_backend,
)
from yadtq.transports.records import PRUNE_BATCH
from yadtq.transports.redis import (
    EVENTS_KEY,
    EVENTS_MAXLEN,
    INDEX_KEEPER,
    INSTANCES_KEY,
    PROCESSING_KEY,
    RECORD_INBOX_MAX_BYTES,
    RECORD_INBOX_SUFFIX,
    RETRYING_KEY,
    REVOKED_KEY,
    STATS_KEY,
    TASK_KEY,
    WAITERS_KEY,
    WORKER_INSTANCE_KEY,
    WORKERS_KEY,
    WORKERS_SEEN_KEY,
    RedisBackend,
)

pytestmark = [pytest.mark.redis, pytest.mark.integration]

DEADLINE = 10.0


def _wait_for(condition: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


class CountingConnection(redis.Connection):
    """Counts the requests each thread writes: one per command, one per pipeline."""

    sends: dict[int, int] = {}
    lock = threading.Lock()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with self.lock:
            me = threading.get_ident()
            self.sends[me] = self.sends.get(me, 0) + 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class LosingConnection(redis.Connection):
    """Loses one reply, after the server executed the command, when ``lose_next`` is set."""

    lose_next = False

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        if LosingConnection.lose_next:
            LosingConnection.lose_next = False
            raise redis.TimeoutError("reply lost (simulated)")
        return response


def _round_trips(action: Callable[[], Any]) -> int:
    me = threading.get_ident()
    before = CountingConnection.sends.get(me, 0)
    action()
    return CountingConnection.sends.get(me, 0) - before


@pytest.fixture
def make_backend(redis_url: str, unique: str) -> Iterator[Callable[..., RedisBackend]]:
    made: list[RedisBackend] = []

    def make(**settings: Any) -> RedisBackend:
        options = {"prefix": f"test-{unique}", **settings.pop("backend_options", {})}
        backend = RedisBackend(redis_url, Settings(backend_options=options, **settings))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"test-{unique}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def backend(make_backend: Callable[..., RedisBackend]) -> RedisBackend:
    return make_backend()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def _success(task_id: str, ts: Optional[float] = None, worker: str = "w1") -> StateChange:
    return StateChange(task_id, "success", ts or time.time(), worker=worker, name="add", result=b"\x05")


# --------------------------------------------------------------------------- configuration


def test_create_backend_finds_redis_by_url(redis_url: str, unique: str) -> None:
    backend = create_backend(redis_url, Settings(backend_options={"prefix": f"test-{unique}"}))
    try:
        assert isinstance(backend, RedisBackend)
        assert backend.key(TASK_KEY, "x") == f"test-{unique}:task:x"
        assert backend.get(["nothing-here"]) == [None]
    finally:
        backend.close()


def test_rediss_url_with_user_and_password_constructs_without_connecting() -> None:
    backend = RedisBackend("rediss://alice:secret@example.invalid:6380/3", Settings())
    kwargs = backend._redis.get_connection_kwargs()
    assert (kwargs["username"], kwargs["password"], kwargs["host"], kwargs["port"], kwargs["db"]) == (
        "alice", "secret", "example.invalid", 6380, 3)
    assert issubclass(backend._redis.connection_pool.connection_class, redis.SSLConnection)
    assert backend.key(TASK_KEY, "t") == "yadtq:task:t"
    plain = RedisBackend("redis://:pw@example.invalid/2", Settings(backend_options={"prefix": "p"}))
    assert plain._redis.get_connection_kwargs()["password"] == "pw"
    assert not issubclass(plain._redis.connection_pool.connection_class, redis.SSLConnection)
    assert plain.key(TASK_KEY, "t") == "p:task:t"


def test_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RedisBackend("redis://example.invalid:notaport/0", Settings())


def test_unreachable_server_raises_backend_unavailable() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", Settings(backend_options={"socket_connect_timeout": 1}))
    with pytest.raises(BackendUnavailable) as info:
        backend.record([_success("t")])
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(BackendUnavailable):
        backend.get(["t"])
    backend.close()


@pytest.mark.timeout(120)
def test_a_redis_that_never_answers_raises_within_the_socket_timeout() -> None:
    """A black hole: the kernel accepts the connection, nothing ever answers. With the
    default timeouts a call raises BackendUnavailable (redis-py's own default waits
    forever); ``backend_options`` override them."""
    import socket

    from yadtq.transports.redis.backend import SOCKET_TIMEOUT

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    url = f"redis://127.0.0.1:{hole.getsockname()[1]}/0"
    try:
        for options, bound in (({}, SOCKET_TIMEOUT * 3), ({"socket_timeout": 0.5}, SOCKET_TIMEOUT)):
            backend = RedisBackend(url, Settings(backend_options=options))
            raised: list[BaseException] = []

            def call(backend: RedisBackend = backend, raised: list[BaseException] = raised) -> None:
                try:
                    backend.get(["t"])
                except BaseException as exc:
                    raised.append(exc)

            started = time.monotonic()
            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            caller.join(60)
            assert not caller.is_alive(), f"a call to a silent redis hung ({options})"
            assert [type(e) for e in raised] == [BackendUnavailable]
            assert time.monotonic() - started < bound, options
            backend.close()
    finally:
        hole.close()


# --------------------------------------------------------------------------- one round trip


@pytest.mark.parametrize("protocol", [2, 3])
def test_records_read_alike_with_either_protocol(make_backend: Callable[..., RedisBackend],
                                                 protocol: int) -> None:
    backend = make_backend(backend_options={"protocol": protocol})
    now = time.time()
    backend.record([_success("one", now), _success("two", now)])
    one, two, missing = backend.get(["one", "two", "missing"])
    assert one is not None and two is not None and missing is None
    assert (one.state, one.result, one.worker, one.history[-1][0]) == ("success", b"\x05", "w1", "success")
    assert [r.task_id if r else None for r in backend.get(["two"])] == ["two"]


def test_a_refused_command_leaves_the_connection_clean(backend: RedisBackend, client: redis.Redis) -> None:
    """Every reply of a batch is read before the first refusal is raised, so the pooled
    connection holds no stale reply for its next user."""
    backend.record([_success("kept"), _success("other", worker="w2")])
    client.set(backend.key(TASK_KEY, "not-a-hash"), b"plain string")
    with pytest.raises(BackendUnavailable, match="WRONGTYPE"):
        backend.get(["kept", "not-a-hash", "other"])
    for _ in range(3):  # the pool's one connection, used again: never "other"'s reply
        (kept,) = backend.get(["kept"])
        assert kept is not None and kept.worker == "w1"
    assert backend.claim([Claim("next", "add", "q", 0, "inst", "w1", time.time())]) == [RUN]


def test_scripts_the_server_forgot_are_loaded_again(backend: RedisBackend, client: redis.Redis) -> None:
    """A restarted Redis has no scripts: claims and records answered NOSCRIPT load them."""
    now = time.time()
    assert backend.claim([Claim("before", "add", "q", 0, "inst", "w1", now)], now) == [RUN]
    client.script_flush()
    assert backend.claim([Claim("after", "add", "q", 0, "inst", "w1", now)], now) == [RUN]
    client.script_flush()
    backend.record([_success("after")])
    assert [r.state if r else None for r in backend.get(["before", "after"])] == ["processing", "success"]
    claim, record = backend._scripts["claim"], backend._scripts["record"]
    assert client.script_exists(claim.sha, record.sha) == [False, True]



def test_every_batch_is_one_round_trip(make_backend: Callable[..., RedisBackend]) -> None:
    backend = make_backend(backend_options={"connection_class": CountingConnection})
    backend.get(["warm-up"])  # the pool's connection is made and handshaken outside the count
    now = time.time()
    ids = [f"t{i}" for i in range(64)]
    scheduled = [ScheduledMessage(f"s{i}", now + 60, Message("q", b"body")) for i in range(8)]
    claims = [Claim(t, "add", "q", 0, "inst", "w1", now, created=now) for t in ids]
    # Lua scripts are loaded on first use (NOSCRIPT, then SCRIPT LOAD): run each once first.
    backend.claim([Claim("warm", "add", "q", 0, "inst", "w1", now)], now)
    backend.record([_success("warm")], scheduled[:1])
    backend.revoke(["warm-r"], now)
    backend.claim_due(0.0, 1, 1.0)

    assert _round_trips(lambda: backend.claim(claims, now - 15)) == 1
    assert _round_trips(lambda: backend.record([_success(t) for t in ids], scheduled)) == 1
    got: list[Optional[TaskRecord]] = []
    assert _round_trips(lambda: got.extend(backend.get(ids))) == 1
    assert [r.state if r else None for r in got] == ["success"] * 64
    states: list[Optional[str]] = []
    backend.states(["warm"])
    assert _round_trips(lambda: states.extend(backend.states(ids))) == 1
    assert states == ["success"] * 64
    assert _round_trips(lambda: backend.revoke(ids[:10], now)) == 1
    due: list[ScheduledMessage] = []
    assert _round_trips(lambda: due.extend(backend.claim_due(now + 61, 100, 30.0))) == 1
    assert {d.task_id for d in due} == {f"s{i}" for i in range(8)}
    assert _round_trips(lambda: backend.release_due(due)) == 1
    assert _round_trips(lambda: backend.forget(ids)) == 1
    assert backend.get(ids) == [None] * 64


def test_a_thousand_concurrent_async_waits_share_one_subscription(
        backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """``asyncio.gather`` of a thousand ``aget`` on a fresh loop: one inbox is opened and
    all wait on it (each opening its own exhausted connections and timed out)."""
    import asyncio

    import yadtq.transports.redis.backend as backend_module

    opened: list[Any] = []

    class Spy(backend_module.AsyncInbox):
        async def open(self) -> Any:
            opened.append(self)
            return await super().open()

    monkeypatch.setattr(backend_module, "AsyncInbox", Spy)
    ids = [f"many-{i}" for i in range(1000)]
    backend.record([_success(t) for t in ids[:500]])

    async def waits() -> list[Optional[TaskRecord]]:
        pending = [asyncio.ensure_future(backend.wait_async(t, DEADLINE)) for t in ids]
        await asyncio.sleep(0.2)
        backend.record([_success(t) for t in ids[500:]])  # the rest by notification
        return await asyncio.gather(*pending)

    records = asyncio.run(asyncio.wait_for(waits(), 60))
    assert [r.state if r else None for r in records] == ["success"] * 1000
    assert len(opened) == 1


# --------------------------------------------------------------------------- Lua atomicity


def test_concurrent_claims_of_the_same_task_grant_exactly_one_run(backend: RedisBackend) -> None:
    now = time.time()
    instances = [f"inst-{n}" for n in range(4)]
    for n, instance in enumerate(instances):
        backend.heartbeat(WorkerInfo(f"w{n}", instance, last_heartbeat=now))
    ids = [f"task-{i}" for i in range(200)]
    barrier = threading.Barrier(4)
    decisions: dict[str, list[tuple[str, str]]] = {t: [] for t in ids}
    lock = threading.Lock()

    def claimant(n: int) -> None:
        order = ids[:]
        random.Random(n).shuffle(order)
        barrier.wait(DEADLINE)
        for batch_start in range(0, len(order), 16):
            batch = order[batch_start:batch_start + 16]
            got = backend.claim([Claim(t, "add", "q", 0, instances[n], f"w{n}", time.time())
                                 for t in batch], now - 15)
            with lock:
                for t, d in zip(batch, got):
                    decisions[t].append((d, instances[n]))

    threads = [threading.Thread(target=claimant, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    for task_id, got in decisions.items():
        runs = [inst for d, inst in got if d == RUN]
        assert len(got) == 4 and len(runs) == 1, (task_id, got)
        assert sorted(d for d, _ in got) == [BUSY, BUSY, BUSY, RUN]
        record = backend.get([task_id])[0]
        assert record is not None and record.state == "processing" and record.instance == runs[0]
        assert [h[0] for h in record.history] == ["processing"]


def test_dedupe_under_contention_yields_one_task_id(backend: RedisBackend) -> None:
    barrier = threading.Barrier(4)
    results: list[list[str]] = [[] for _ in range(4)]
    candidates: list[set[str]] = [set() for _ in range(4)]

    def submitter(n: int) -> None:
        barrier.wait(DEADLINE)
        for _ in range(250):
            mine = uuid.uuid4().hex
            candidates[n].add(mine)
            results[n].append(backend.claim_dedupe("add:2,3", mine, 60.0))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    winners = {w for r in results for w in r}
    assert len(winners) == 1
    assert sum(len(r) for r in results) == 1000
    assert winners <= set().union(*candidates)


def test_dedupe_moves_on_from_a_failed_task_and_expires(backend: RedisBackend, client: redis.Redis) -> None:
    assert backend.claim_dedupe("k", "first", 60.0) == "first"
    assert backend.claim_dedupe("k", "second", 60.0) == "first"
    backend.record([StateChange("first", "failed", time.time())])
    assert backend.claim_dedupe("k", "third", 0.2) == "third"
    assert 0 < client.pttl(backend.key("dedupe:", "k")) <= 200
    _wait_for(lambda: client.exists(backend.key("dedupe:", "k")) == 0)
    assert backend.claim_dedupe("k", "fourth", 60.0) == "fourth"


def test_a_change_never_leaves_a_ready_state_and_counters_follow(backend: RedisBackend,
                                                                 client: redis.Redis) -> None:
    now = time.time()
    backend.record([
        StateChange("a", "processing", now, worker="w1", name="add"),
        StateChange("a", "retrying", now + 1, worker="w1", eta=now + 5),
        StateChange("a", "success", now + 2, worker="w1", result=b"\x05"),
        StateChange("a", "failed", now + 3, worker="w1"),  # refused: already ready
        StateChange("b", "failed", now, worker="w2", name="div"),
    ])
    record = backend.get(["a"])[0]
    assert record is not None and record.state == "success" and record.result == b"\x05"
    assert [h[0] for h in record.history] == ["processing", "retrying", "success"]
    assert record.eta == now + 5 and record.name == "add"
    stats = client.hgetall(backend.key(STATS_KEY))
    assert stats == {b"succeeded": b"1", b"failed": b"1", b"retried": b"1"}


def test_claim_is_busy_for_a_live_instance_and_takes_over_from_a_dead_one(
        backend: RedisBackend) -> None:
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    assert backend.claim([Claim("t", "add", "q", 0, "i1", "w1", now)], now - 15) == [RUN]
    assert backend.claim([Claim("t", "add", "q", 0, "i2", "w2", now)], now - 15) == [BUSY]
    # The same worker name restarted: its old instance is no longer alive.
    backend.heartbeat(WorkerInfo("w1", "i9", last_heartbeat=now))
    assert backend.claim([Claim("t", "add", "q", 0, "i2", "w2", now)], now - 15) == [RUN]
    backend.heartbeat(WorkerInfo("w2", "i2", last_heartbeat=now, state="stopped"))
    assert backend.claim([Claim("t", "add", "q", 0, "i3", "w3", now)], now - 15) == [RUN]


def test_a_claim_replayed_after_a_lost_reply_is_still_granted(
        make_backend: Callable[..., RedisBackend]) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    backend = make_backend(backend_options={"connection_class": LosingConnection,
                                            "retry": Retry(NoBackoff(), 1)})
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    backend.claim([Claim("warm", "add", "q", 0, "i1", "w1", now)], now)  # the script is loaded
    claims = [Claim("t", "add", "q", 0, "i1", "w1", now)]
    LosingConnection.lose_next = True
    # redis-py retries the script after the lost reply: the replay must not turn the
    # grant into a SKIP (nobody would run the task), nor record it twice.
    assert backend.claim(claims, now - 15) == [RUN]
    assert not LosingConnection.lose_next
    record = backend.get(["t"])[0]
    assert record is not None and [h[0] for h in record.history] == ["processing"]
    # the instance holding the task may claim it again (the worker retrying a claim) ...
    assert backend.claim(claims, now - 15) == [RUN]
    # ... while another live instance may not
    backend.heartbeat(WorkerInfo("w2", "i2", last_heartbeat=now))
    assert backend.claim([Claim("t", "add", "q", 0, "i2", "w2", now)], now - 15) == [BUSY]


def test_revoke_marks_and_claim_records_revoked(backend: RedisBackend, client: redis.Redis) -> None:
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    backend.claim([Claim("running", "add", "q", 0, "i1", "w1", now)], now - 15)
    backend.revoke(["waiting", "running"], now)
    records = dict(zip(["waiting", "running"], backend.get(["waiting", "running"])))
    assert records["waiting"] is not None and records["waiting"].state == "revoked"
    assert records["running"] is not None and records["running"].state == "processing"
    marker_ttl = client.pttl(backend.key(REVOKED_KEY, "running"))
    assert 0 < marker_ttl <= backend.settings.result_expires * 1000
    assert backend.claim([Claim("waiting", "add", "q", 0, "i2", "w2", now)], now - 15) == [SKIP]
    backend.forget(["waiting"])
    assert backend.claim([Claim("waiting", "add", "q", 0, "i2", "w2", now + 1)], now - 15) == [REVOKED]
    record = backend.get(["waiting"])[0]
    assert record is not None and record.state == "revoked" and record.worker == "w2"


def test_the_task_indexes_are_skiplists_and_their_keeper_is_no_task(backend: RedisBackend,
                                                                    client: redis.Redis) -> None:
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    ids = [f"t{n}" for n in range(3)]
    assert backend.claim([Claim(i, "add", "q", 0, "i1", "w1", now + n) for n, i in enumerate(ids)],
                         now - 15) == [RUN] * 3
    processing = backend.key(PROCESSING_KEY)
    assert client.object("encoding", processing) == b"skiplist"
    assert client.zscore(processing, INDEX_KEEPER) == float("inf")
    snapshot = backend.snapshot()
    assert snapshot.processing == 3
    assert [t.task_id for t in snapshot.processing_tasks] == ids
    backend.record([StateChange("t0", "retrying", now + 5, worker="w1", eta=now + 60), _success("t1")])
    snapshot = backend.snapshot()
    assert (snapshot.processing, snapshot.retrying) == (1, 1)
    assert [t.task_id for t in snapshot.processing_tasks] == ["t2"]
    assert [t.task_id for t in snapshot.retrying_tasks] == ["t0"]
    assert client.object("encoding", backend.key(RETRYING_KEY)) == b"skiplist"
    backend.record([_success("t2")])
    snapshot = backend.snapshot(limit=1)
    assert snapshot.processing == 0 and snapshot.processing_tasks == ()
    assert client.zrange(processing, 0, -1) == [INDEX_KEEPER.encode()]


# --------------------------------------------------------------------------- TTL and events


def test_every_write_sets_the_record_ttl(make_backend: Callable[..., RedisBackend],
                                         client: redis.Redis) -> None:
    backend = make_backend(result_expires=30.0)
    now = time.time()
    key = backend.key(TASK_KEY, "t")
    backend.claim([Claim("t", "add", "q", 0, "i1", "w1", now)], now)
    client.persist(key)
    backend.record([StateChange("t", "retrying", now, eta=now + 1)])
    assert 0 < client.pttl(key) <= 30_000
    client.persist(key)
    backend.claim([Claim("t", "add", "q", 0, "i1", "w1", now)], now)
    assert 0 < client.pttl(key) <= 30_000

    short = make_backend(result_expires=0.2)
    short.record([_success("gone")])
    assert short.get(["gone"])[0] is not None
    _wait_for(lambda: short.get(["gone"]) == [None])


def test_no_events_stream_is_written_unless_asked(backend: RedisBackend, client: redis.Redis) -> None:
    now = time.time()
    backend.claim([Claim("c", "add", "q", 0, "i1", "w1", now)], now)
    backend.record([_success("c"), StateChange("r", "processing", now, worker="w1", name="add")])
    backend.revoke(["v"], now)
    assert [r.state for r in backend.get(["c", "r", "v"]) if r] == ["success", "processing", "revoked"]
    assert client.exists(backend.key(EVENTS_KEY)) == 0


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_events_option_must_be_a_boolean(redis_url: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="bad redis events option"):
        RedisBackend(redis_url, Settings(backend_options={"events": value}))


def test_events_stream_has_one_entry_per_change_and_is_capped(
        make_backend: Callable[..., RedisBackend], client: redis.Redis) -> None:
    backend = make_backend(backend_options={"events": True})
    now = time.time()
    backend.record([StateChange("first", "processing", now, worker="w1", name="add")])
    entries: Any = client.xrange(backend.key(EVENTS_KEY))
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"id"] == b"first" and fields[b"name"] == b"add"
    assert fields[b"state"] == b"processing" and fields[b"worker"] == b"w1"
    assert float(fields[b"ts"]) == now
    total = EVENTS_MAXLEN + 2_000
    for start in range(0, total, 500):
        backend.record([_success(f"t{i}") for i in range(start, start + 500)])
    length = client.xlen(backend.key(EVENTS_KEY))
    # MAXLEN ~ trims whole stream nodes (100 entries each by default), so a little over is fine.
    assert EVENTS_MAXLEN <= length <= EVENTS_MAXLEN + 200
    newest: Any = client.xrevrange(backend.key(EVENTS_KEY), count=1)
    last = newest[0][1]
    assert last[b"id"] == f"t{total - 1}".encode() and last[b"state"] == b"success"


# --------------------------------------------------------------------------- schedule


def test_a_lease_that_expires_makes_the_entry_claimable_again(backend: RedisBackend) -> None:
    now = time.time()
    entries = [ScheduledMessage(f"s{i}", now + i, Message("q", f"body{i}".encode(), b"key",
                                                          {"yadtq-task": b"add"})) for i in range(3)]
    backend.record([StateChange(e.task_id, "scheduled", now, eta=e.due) for e in entries], entries)
    assert backend.next_due() == now
    first = backend.claim_due(now + 1, 10, lease=5.0)
    assert first == entries[:2]
    assert backend.next_due() == now + 2
    assert backend.claim_due(now + 1.5, 10, lease=5.0) == []
    # The claimant died: once its lease is over, another caller gets the entries back.
    again = backend.claim_due(now + 6.5, 10, lease=5.0)
    assert sorted(again, key=lambda e: e.due) == entries
    backend.release_due(again[:1])
    assert backend.claim_due(now + 12, 10, lease=5.0) == [e for e in again[1:]]
    backend.release_due(again[1:])
    assert backend.claim_due(now + 100, 10, lease=5.0) == []
    assert backend.next_due() is None


# --------------------------------------------------------------------------- wait


def test_wait_is_woken_by_a_record_from_another_thread(backend: RedisBackend, client: redis.Redis) -> None:
    woken: dict[str, Any] = {}

    def waiter() -> None:
        woken["record"] = backend.wait("t", timeout=DEADLINE)
        woken["at"] = time.monotonic()

    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_for(lambda: client.exists(backend.key(WAITERS_KEY, "t")))  # the waiter is registered
    recorded_at = time.monotonic()
    backend.record([_success("t")])
    thread.join(DEADLINE)
    assert not thread.is_alive()
    record = woken["record"]
    assert record is not None and record.state == "success" and record.result == b"\x05"
    assert woken["at"] - recorded_at < 0.5  # woken by the notification, far before the timeout
    assert client.exists(backend.key(WAITERS_KEY, "t")) == 0  # the registration is spent


def test_wait_returns_a_ready_record_at_once_and_none_on_timeout(backend: RedisBackend) -> None:
    backend.record([_success("done")])
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
    _wait_for(lambda: all(client.exists(backend.key(WAITERS_KEY, t)) for t in ids))
    assert len(pubsub_ids() - before) == 1
    backend.record([_success(t) for t in ids[:20]])
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
    backend.record([_success("warm")])
    assert backend.wait("warm", DEADLINE) is not None  # opens the inbox
    ours = pubsub_ids() - before
    assert len(ours) == 1
    result: dict[str, Optional[TaskRecord]] = {}
    thread = threading.Thread(target=lambda: result.__setitem__("r", backend.wait("t", DEADLINE)))
    thread.start()
    _wait_for(lambda: client.exists(backend.key(WAITERS_KEY, "t")))
    client.client_kill_filter(_id=str(ours.pop()))
    _wait_for(lambda: len(pubsub_ids() - before) == 1)  # resubscribed on a new connection
    backend.record([_success("t")])
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert result["r"] is not None and result["r"].state == "success"



def _waiting(backend: RedisBackend, client: redis.Redis, task_id: str,
             watches: list[str]) -> tuple[threading.Thread, dict[str, Optional[TaskRecord]]]:
    """A thread waiting on ``task_id``, registered; ``watches`` collects its reads."""
    result: dict[str, Optional[TaskRecord]] = {}
    thread = threading.Thread(target=lambda: result.__setitem__("r", backend.wait(task_id, DEADLINE)))
    thread.start()
    _wait_for(lambda: client.exists(backend.key(WAITERS_KEY, task_id)))
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
    backend.record([_success("t")])
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
        backend.record([dataclasses.replace(_success("t"), result=big)])
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
    backend.record([_success("t")])
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
